// BERT's config.json fields (transformers' BertConfig). RoBERTa's are the same (roberta_config.cpp).
#include <stdexcept>

#include "model/config.h"

namespace emotune::model {

namespace {

void read(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.hidden_size = config_field<int64_t>(j, "hidden_size", 768, where);
  c.num_layers = config_field<int64_t>(j, "num_hidden_layers", 12, where);
  c.num_heads = config_field<int64_t>(j, "num_attention_heads", 12, where);
  c.intermediate_size = config_field<int64_t>(j, "intermediate_size", 3072, where);
  c.type_vocab_size = config_field<int64_t>(j, "type_vocab_size", 2, where);
  c.hidden_dropout = config_field<double>(j, "hidden_dropout_prob", 0.1, where);
  c.attention_dropout = config_field<double>(j, "attention_probs_dropout_prob", 0.1, where);
  c.classifier_dropout = config_field<double>(j, "classifier_dropout", c.hidden_dropout, where);
  c.layer_norm_eps = config_field<double>(j, "layer_norm_eps", 1e-12, where);
  c.activation = config_field<std::string>(j, "hidden_act", "gelu", where);
  const auto positions = config_field<std::string>(j, "position_embedding_type", "absolute", where);
  if (positions != "absolute")
    throw std::runtime_error(where + ": position_embedding_type '" + positions + "' is not supported (absolute)");
  if (c.type_vocab_size <= 0) throw std::runtime_error(where + ": type_vocab_size must be positive");
  if (!(c.layer_norm_eps > 0)) throw std::runtime_error(where + ": layer_norm_eps must be positive");
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["type_vocab_size"] = c.type_vocab_size;
  j["hidden_act"] = c.activation;
  j["hidden_dropout_prob"] = c.hidden_dropout;
  j["attention_probs_dropout_prob"] = c.attention_dropout;
  j["classifier_dropout"] = c.classifier_dropout;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["position_embedding_type"] = "absolute";
}

}  // namespace

const FamilyConfig& bert_family_config() {
  static const FamilyConfig family{"bert", "BertForSequenceClassification", "BertTokenizer", read, write};
  return family;
}

}  // namespace emotune::model
