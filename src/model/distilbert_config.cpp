// DistilBERT's config.json fields (transformers' DistilBertConfig).
#include <stdexcept>

#include "model/config.h"

namespace emotune::model {

namespace {

void read(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.hidden_size = config_field<int64_t>(j, "dim", 768, where);
  c.num_layers = config_field<int64_t>(j, "n_layers", 6, where);
  c.num_heads = config_field<int64_t>(j, "n_heads", 12, where);
  c.intermediate_size = config_field<int64_t>(j, "hidden_dim", 3072, where);
  c.hidden_dropout = config_field<double>(j, "dropout", 0.1, where);
  c.attention_dropout = config_field<double>(j, "attention_dropout", 0.1, where);
  c.classifier_dropout = config_field<double>(j, "seq_classif_dropout", 0.2, where);
  c.activation = config_field<std::string>(j, "activation", "gelu", where);
  c.layer_norm_eps = 1e-12;  // fixed in Hugging Face's DistilBERT
  c.type_vocab_size = 0;
  if (config_field<bool>(j, "sinusoidal_pos_embds", false, where))
    throw std::runtime_error(where + ": sinusoidal_pos_embds=true is not supported");
}

void write(const ModelConfig& c, nlohmann::json& j) {
  j["dim"] = c.hidden_size;
  j["n_layers"] = c.num_layers;
  j["n_heads"] = c.num_heads;
  j["hidden_dim"] = c.intermediate_size;
  j["dropout"] = c.hidden_dropout;
  j["attention_dropout"] = c.attention_dropout;
  j["seq_classif_dropout"] = c.classifier_dropout;
  j["activation"] = c.activation;
  j["sinusoidal_pos_embds"] = false;
}

}  // namespace

const FamilyConfig& distilbert_family_config() {
  static const FamilyConfig family{"distilbert", "DistilBertForSequenceClassification", "DistilBertTokenizer", read,
                                   write};
  return family;
}

}  // namespace emotune::model
