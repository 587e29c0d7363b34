// RoBERTa's config.json fields: BERT's, with positions counted from padding_idx + 1.
#include "model/config.h"

namespace emotune::model {

namespace {

void read(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  if (!j.contains("pad_token_id")) c.pad_token_id = 1;  // RobertaConfig's default
  bert_family_config().read(j, c, where);
  c.position_offset = c.pad_token_id + 1;
}

void write(const ModelConfig& c, nlohmann::json& j) { bert_family_config().write(c, j); }

}  // namespace

const FamilyConfig& roberta_family_config() {
  static const FamilyConfig family{"roberta", "RobertaForSequenceClassification", "RobertaTokenizer", read, write};
  return family;
}

}  // namespace emotune::model
