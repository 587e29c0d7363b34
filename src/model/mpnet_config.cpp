// MPNet's config.json fields (transformers' MPNetConfig): BERT's size, dropout and activation fields
// without type_vocab_size and classifier_dropout, plus relative_attention_num_buckets.
#include <stdexcept>

#include "model/config.h"

namespace emotune::model {

namespace {

// transformers looks up 32 buckets whatever the config says (compute_position_bias's default).
constexpr int64_t kLeastBuckets = 32;

void read(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  if (!j.contains("pad_token_id")) c.pad_token_id = 1;  // MPNetConfig's default
  c.hidden_size = config_field<int64_t>(j, "hidden_size", 768, where);
  c.num_layers = config_field<int64_t>(j, "num_hidden_layers", 12, where);
  c.num_heads = config_field<int64_t>(j, "num_attention_heads", 12, where);
  c.intermediate_size = config_field<int64_t>(j, "intermediate_size", 3072, where);
  c.type_vocab_size = 0;
  c.hidden_dropout = config_field<double>(j, "hidden_dropout_prob", 0.1, where);
  c.attention_dropout = config_field<double>(j, "attention_probs_dropout_prob", 0.1, where);
  c.classifier_dropout = c.hidden_dropout;  // MPNetClassificationHead's dropout
  c.layer_norm_eps = config_field<double>(j, "layer_norm_eps", 1e-5, where);
  c.activation = config_field<std::string>(j, "hidden_act", "gelu", where);
  if (!(c.layer_norm_eps > 0)) throw std::runtime_error(where + ": layer_norm_eps must be positive");
  c.relative_attention_num_buckets = config_field<int64_t>(j, "relative_attention_num_buckets", kLeastBuckets, where);
  if (c.relative_attention_num_buckets < kLeastBuckets || c.relative_attention_num_buckets > 4096)
    throw std::runtime_error(where + ": relative_attention_num_buckets must be within [32, 4096] (transformers "
                                     "looks up 32 buckets)");
  c.position_offset = c.pad_token_id + 1;
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["hidden_act"] = c.activation;
  j["hidden_dropout_prob"] = c.hidden_dropout;
  j["attention_probs_dropout_prob"] = c.attention_dropout;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["relative_attention_num_buckets"] = c.relative_attention_num_buckets;
}

}  // namespace

const FamilyConfig& mpnet_family_config() {
  static const FamilyConfig family{"mpnet", "MPNetForSequenceClassification", "MPNetTokenizer", read, write};
  return family;
}

}  // namespace emotune::model
