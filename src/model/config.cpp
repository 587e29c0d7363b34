#include "model/config.h"

#include <charconv>
#include <set>
#include <tuple>
#include <stdexcept>

#include "util/errors.h"
#include "util/json_file.h"

namespace emotune::model {

using json = nlohmann::json;

namespace {

// Bounds far above any published encoder, so that a typo fails here rather than by exhausting memory.
void check_sizes(const ModelConfig& c, const std::string& where) {
  for (auto [name, v, least, most] : {std::tuple{"vocab_size", c.vocab_size, 1, int64_t{10'000'000}},
                                      {"max_position_embeddings", c.max_position_embeddings, 1, int64_t{1'048'576}},
                                      {"hidden size", c.hidden_size, 1, int64_t{65'536}},
                                      {"layer count", c.num_layers, 1, int64_t{512}},
                                      {"head count", c.num_heads, 1, int64_t{1024}},
                                      {"intermediate size", c.intermediate_size, 1, int64_t{262'144}},
                                      {"type_vocab_size", c.type_vocab_size, 0, int64_t{1'048'576}}})
    if (v < least || v > most)
      throw std::runtime_error(where + ": " + name + " " + std::to_string(v) + " is out of range (" +
                               std::to_string(least) + ".." + std::to_string(most) + ")");
  for (auto [name, p] : {std::pair{"hidden dropout", c.hidden_dropout}, {"attention dropout", c.attention_dropout},
                         {"classifier dropout", c.classifier_dropout}})
    if (!(p >= 0 && p <= 1)) throw std::runtime_error(where + ": the " + std::string(name) + " must be in [0, 1]");
  if (!(c.layer_norm_eps > 0 && c.layer_norm_eps < 1)) throw std::runtime_error(where + ": layer_norm_eps must be in (0, 1)");
  if (!(c.initializer_range > 0 && c.initializer_range < 10))
    throw std::runtime_error(where + ": initializer_range must be a small positive number");
  if (c.max_tokens() < 2)
    throw std::runtime_error(where + ": max_position_embeddings leaves room for fewer than 2 tokens");
  if (c.hidden_size % c.num_heads != 0)
    throw std::runtime_error(where + ": the hidden size must be a multiple of the head count");
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw std::runtime_error(where + ": pad_token_id outside the vocabulary");
  if (c.activation != "gelu" && c.activation != "relu")
    throw std::runtime_error(where + ": activation '" + c.activation + "' is not supported (gelu, relu)");
}

std::vector<std::string> read_id2label(const json& j, const std::string& where) {
  std::vector<std::string> labels;
  if (!j.contains("id2label") || !j.at("id2label").is_object()) return labels;
  const json& m = j.at("id2label");
  labels.resize(m.size());
  for (const auto& [key, name] : m.items()) {
    // Keys are ids written as Python writes ints: "0", "1", ... ("00" or "+1" are typos, not ids).
    std::size_t id = 0;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (key.empty() || ec != std::errc() || end != key.data() + key.size() || (key.size() > 1 && key[0] == '0'))
      throw std::runtime_error(where + ": id2label key '" + key + "' is not an id (0, 1, 2, ...)");
    if (id >= labels.size() || !name.is_string())
      throw std::runtime_error(where + ": id2label is not a list of names for ids 0..N-1");
    if (name.get<std::string>().empty()) throw std::runtime_error(where + ": id2label gives id " + key + " an empty name");
    labels[id] = name.get<std::string>();
  }
  std::set<std::string> seen;
  for (const auto& label : labels)
    if (!seen.insert(label).second) throw std::runtime_error(where + ": id2label names '" + label + "' twice");
  return labels;
}

}  // namespace

const std::vector<const FamilyConfig*>& all_family_configs() {
  static const std::vector<const FamilyConfig*> families{&distilbert_family_config(), &bert_family_config(),
                                                         &roberta_family_config(), &mpnet_family_config()};
  return families;
}

const FamilyConfig& family_config(const std::string& model_type, const std::string& where) {
  std::string known;
  for (const FamilyConfig* f : all_family_configs()) {
    if (model_type == f->model_type) return *f;
    known += (known.empty() ? "" : ", ") + std::string(f->model_type);
  }
  throw std::runtime_error(where + ": model_type '" + model_type + "' is not supported (emotune reads " + known + ")");
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  return parse(util::read_json_file(path), path.string());
}

ModelConfig ModelConfig::parse(const json& j, const std::string& where) {
  if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object");
  ModelConfig c;
  c.model_type = config_field<std::string>(j, "model_type", "", where);
  const FamilyConfig& family = family_config(c.model_type, where);
  c.raw = j;
  // The fields every family names alike (written back by to_classifier_json); then the family's own.
  c.vocab_size = config_field<int64_t>(j, "vocab_size", c.vocab_size, where);
  c.max_position_embeddings = config_field<int64_t>(j, "max_position_embeddings", c.max_position_embeddings, where);
  c.initializer_range = config_field<double>(j, "initializer_range", c.initializer_range, where);
  c.pad_token_id = config_field<int64_t>(j, "pad_token_id", c.pad_token_id, where);
  family.read(j, c, where);
  check_sizes(c, where);
  c.labels = read_id2label(j, where);
  const auto problem = config_field<std::string>(j, "problem_type", "multi_label_classification", where);
  if (problem != "multi_label_classification" && problem != "single_label_classification")
    throw std::runtime_error(where + ": problem_type '" + problem +
                             "' is not supported (multi_label_classification or single_label_classification)");
  c.single_label = problem == "single_label_classification";
  return c;
}

json ModelConfig::to_classifier_json() const {
  json j = raw.is_object() ? raw : json::object();
  const FamilyConfig& family = family_config(model_type, "config");
  j["model_type"] = family.model_type;
  j["architectures"] = json::array({family.architecture});
  family.write(*this, j);
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
  j["problem_type"] = single_label ? "single_label_classification" : "multi_label_classification";
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

std::size_t ModelConfig::choose_max_length(std::size_t requested, std::size_t default_length) const {
  const auto positions = static_cast<std::size_t>(max_tokens());
  const std::size_t chosen = requested ? requested : default_length ? std::min(default_length, positions) : positions;
  if (chosen < 2 || chosen > positions)
    throw SettingError("{max_length} " + std::to_string(chosen) + " is outside 2.." + std::to_string(positions) +
                       " (the model's positions)");
  return chosen;
}

void ModelConfig::set_all_dropouts(double p) {
  hidden_dropout = attention_dropout = classifier_dropout = p;
}

}  // namespace emotune::model
