#include "model/config.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace emotune::model {

using json = nlohmann::json;

namespace {

template <typename T>
T field(const json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw std::runtime_error(where + ": field '" + key + "' has the wrong type");
  }
}

}  // namespace

DistilBertConfig DistilBertConfig::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read model config " + path.string());
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error("invalid JSON in " + path.string() + ": " + e.what());
  }
  const std::string where = path.string();
  if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object");
  const std::string model_type = field<std::string>(j, "model_type", "", where);
  if (model_type != "distilbert")
    throw std::runtime_error(where + ": model_type '" + model_type +
                             "' is not supported (emotune reads DistilBERT checkpoints)");
  DistilBertConfig c;
  c.raw = j;
  c.vocab_size = field<int64_t>(j, "vocab_size", c.vocab_size, where);
  c.max_position_embeddings = field<int64_t>(j, "max_position_embeddings", c.max_position_embeddings, where);
  c.dim = field<int64_t>(j, "dim", c.dim, where);
  c.n_layers = field<int64_t>(j, "n_layers", c.n_layers, where);
  c.n_heads = field<int64_t>(j, "n_heads", c.n_heads, where);
  c.hidden_dim = field<int64_t>(j, "hidden_dim", c.hidden_dim, where);
  c.dropout = field<double>(j, "dropout", c.dropout, where);
  c.attention_dropout = field<double>(j, "attention_dropout", c.attention_dropout, where);
  c.seq_classif_dropout = field<double>(j, "seq_classif_dropout", c.seq_classif_dropout, where);
  c.initializer_range = field<double>(j, "initializer_range", c.initializer_range, where);
  c.pad_token_id = field<int64_t>(j, "pad_token_id", c.pad_token_id, where);
  c.activation = field<std::string>(j, "activation", c.activation, where);
  if (field<bool>(j, "sinusoidal_pos_embds", false, where))
    throw std::runtime_error(where + ": sinusoidal_pos_embds=true is not supported");
  if (c.activation != "gelu" && c.activation != "relu")
    throw std::runtime_error(where + ": activation '" + c.activation + "' is not supported (gelu, relu)");
  for (auto [name, v] : {std::pair{"vocab_size", c.vocab_size}, {"max_position_embeddings", c.max_position_embeddings},
                         {"dim", c.dim}, {"n_layers", c.n_layers}, {"n_heads", c.n_heads}, {"hidden_dim", c.hidden_dim}})
    if (v <= 0) throw std::runtime_error(where + ": '" + name + "' must be positive");
  if (c.dim % c.n_heads != 0) throw std::runtime_error(where + ": dim must be a multiple of n_heads");
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw std::runtime_error(where + ": pad_token_id outside the vocabulary");

  if (j.contains("id2label") && j.at("id2label").is_object()) {
    const json& m = j.at("id2label");
    c.labels.resize(m.size());
    for (const auto& [key, name] : m.items()) {
      std::size_t id = 0;
      try {
        std::size_t pos = 0;
        id = std::stoul(key, &pos);
        if (pos != key.size()) throw std::invalid_argument(key);
      } catch (const std::exception&) {
        throw std::runtime_error(where + ": id2label key '" + key + "' is not a number");
      }
      if (id >= c.labels.size() || !name.is_string())
        throw std::runtime_error(where + ": id2label is not a list of names for ids 0..N-1");
      c.labels[id] = name.get<std::string>();
    }
  }
  return c;
}

json DistilBertConfig::to_classifier_json() const {
  json j = raw.is_object() ? raw : json::object();
  j["model_type"] = "distilbert";
  j["architectures"] = json::array({"DistilBertForSequenceClassification"});
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["dim"] = dim;
  j["n_layers"] = n_layers;
  j["n_heads"] = n_heads;
  j["hidden_dim"] = hidden_dim;
  j["dropout"] = dropout;
  j["attention_dropout"] = attention_dropout;
  j["seq_classif_dropout"] = seq_classif_dropout;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
  j["activation"] = activation;
  j["sinusoidal_pos_embds"] = false;
  j["problem_type"] = "multi_label_classification";
  j["torch_dtype"] = "float32";
  json id2label = json::object(), label2id = json::object();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    id2label[std::to_string(i)] = labels[i];
    label2id[labels[i]] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  return j;
}

void DistilBertConfig::set_all_dropouts(double p) {
  dropout = attention_dropout = seq_classif_dropout = p;
}

}  // namespace emotune::model
