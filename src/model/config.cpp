#include "model/config.h"

#include <fstream>
#include <stdexcept>

#include "model/encoder.h"
#include "model/family.h"

namespace emotune::model {

using json = nlohmann::json;

namespace {

void check_sizes(const ModelConfig& c, const std::string& where) {
  for (auto [name, v] : {std::pair{"vocab_size", c.vocab_size}, {"max_position_embeddings", c.max_position_embeddings},
                         {"hidden size", c.hidden_size}, {"layer count", c.num_layers}, {"head count", c.num_heads},
                         {"intermediate size", c.intermediate_size}})
    if (v <= 0) throw std::runtime_error(where + ": " + name + " must be positive");
  if (c.hidden_size % c.num_heads != 0)
    throw std::runtime_error(where + ": the hidden size must be a multiple of the head count");
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw std::runtime_error(where + ": pad_token_id outside the vocabulary");
  try {
    activation_named(c.activation);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
}

std::vector<std::string> read_id2label(const json& j, const std::string& where) {
  std::vector<std::string> labels;
  if (!j.contains("id2label") || !j.at("id2label").is_object()) return labels;
  const json& m = j.at("id2label");
  labels.resize(m.size());
  for (const auto& [key, name] : m.items()) {
    std::size_t id = 0;
    try {
      std::size_t pos = 0;
      id = std::stoul(key, &pos);
      if (pos != key.size()) throw std::invalid_argument(key);
    } catch (const std::exception&) {
      throw std::runtime_error(where + ": id2label key '" + key + "' is not a number");
    }
    if (id >= labels.size() || !name.is_string())
      throw std::runtime_error(where + ": id2label is not a list of names for ids 0..N-1");
    labels[id] = name.get<std::string>();
  }
  return labels;
}

}  // namespace

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
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
  ModelConfig c;
  c.model_type = config_field<std::string>(j, "model_type", "", where);
  const Family& family = find_family(c.model_type, where);
  c.raw = j;
  // The fields every family names alike (written back by to_classifier_json); then the family's own.
  c.vocab_size = config_field<int64_t>(j, "vocab_size", c.vocab_size, where);
  c.max_position_embeddings = config_field<int64_t>(j, "max_position_embeddings", c.max_position_embeddings, where);
  c.initializer_range = config_field<double>(j, "initializer_range", c.initializer_range, where);
  c.pad_token_id = config_field<int64_t>(j, "pad_token_id", c.pad_token_id, where);
  family.read_config(j, c, where);
  check_sizes(c, where);
  c.labels = read_id2label(j, where);
  return c;
}

json ModelConfig::to_classifier_json() const {
  json j = raw.is_object() ? raw : json::object();
  const Family& family = find_family(model_type, "config");
  j["model_type"] = family.model_type;
  j["architectures"] = json::array({family.architecture});
  family.write_config(*this, j);
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
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

void ModelConfig::set_all_dropouts(double p) {
  hidden_dropout = attention_dropout = classifier_dropout = p;
}

}  // namespace emotune::model
