// The configuration of an encoder classifier, whatever its family, as read from and written to
// Hugging Face's config.json. Each family reads and writes its own field names (model/NAME_config.cpp,
// like transformers' configuration_NAME.py); the rest of emotune sees only these. Torch-free, so the
// reader of this outside file builds and is fuzzed on its own (fuzz/fuzz_config.cpp).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <cstddef>
#include <vector>

namespace emotune::model {

struct ModelConfig {
  std::string model_type = "distilbert";  // config.json's model_type: picks the family
  int64_t vocab_size = 30522;
  int64_t max_position_embeddings = 512;
  // Positions a family reserves before the first token's (RoBERTa counts from padding_idx + 1).
  int64_t position_offset = 0;
  int64_t hidden_size = 768;
  int64_t num_layers = 6;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t type_vocab_size = 0;  // token types (BERT); every token has type 0; 0 = the family has none
  double hidden_dropout = 0.1;
  double attention_dropout = 0.1;
  double classifier_dropout = 0.2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  std::string activation = "gelu";  // "gelu" (erf form) or "relu"
  int64_t relative_attention_num_buckets = 0;  // rows of MPNet's relative position table; 0 elsewhere
  std::vector<std::string> labels;  // id2label in id order; empty for a base checkpoint
  // config.json's problem_type: how scores come from logits (sigmoid for multi-label, softmax for
  // single-label). Absent means multi-label, emotune's default objective.
  bool single_label = false;
  nlohmann::json raw;               // every field of the file, kept when writing it back

  // The most tokens one sequence may hold, special tokens included.
  int64_t max_tokens() const { return max_position_embeddings - position_offset; }
  // The tokens per text a command works with, decided here for every command: `requested`, or when
  // 0 `default_length` capped at the model's positions, or when that is 0 too the model's positions.
  // Outside 2..max_tokens() is a SettingError naming {max_length}.
  std::size_t choose_max_length(std::size_t requested, std::size_t default_length = 0) const;
  // Matrix-product FLOPs (a multiply and an add each count) that a classifier's forward pass executes
  // for one text of `tokens` tokens, which attend to each other alone (rows are packed, no padding).
  // Every layer but the last computes, per token, the q, k, v and output projections (4 d^2), the
  // feed-forward pair (2 d h), q k^T and the weighted sum of v (2 tokens d each). The last computes
  // keys and values for every token, and the rest for the first position alone: the classifier reads
  // nothing else.
  double classifier_forward_flops(double tokens) const {
    if (num_layers == 0) return 0;
    const double d = static_cast<double>(hidden_size), h = static_cast<double>(intermediate_size);
    const double full_layer_per_token = 2 * (4 * d * d + 2 * d * h) + 4 * tokens * d;
    const double last_layer = tokens * 2 * (2 * d * d) + 2 * (2 * d * d + 2 * d * h) + 4 * tokens * d;
    return static_cast<double>(num_layers - 1) * tokens * full_layer_per_token + last_layer;
  }

  // Reads and validates config.json; errors name the file and the field.
  static ModelConfig load(const std::filesystem::path& path);
  // The same from config.json's parsed contents; errors name `where`.
  static ModelConfig parse(const nlohmann::json& j, const std::string& where);
  // The config.json of a sequence classifier of this family with this config's labels.
  nlohmann::json to_classifier_json() const;
  // Overrides every dropout probability (training's --dropout).
  void set_all_dropouts(double p);
};

// A field of a config.json object, or `fallback` when absent or null; a wrong type throws naming
// `where` and the key.
template <typename T>
T config_field(const nlohmann::json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  // nlohmann converts 32.7 to an integer 32 without a word: a size must be written as an integer.
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!j.at(key).is_number_integer()) throw std::runtime_error(where + ": field '" + key + "' must be an integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.at(key).is_number()) throw std::runtime_error(where + ": field '" + key + "' must be a number");
  }
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(where + ": field '" + key + "' has the wrong type");
  }
}

// What config.json says about one family: its names and how its own fields map to ModelConfig.
struct FamilyConfig {
  const char* model_type;       // "distilbert"
  const char* architecture;     // "DistilBertForSequenceClassification"
  const char* tokenizer_class;  // tokenizer_config.json's, as transformers picks it ("DistilBertTokenizer")
  // This family's own config.json fields -> ModelConfig (vocab_size, max_position_embeddings,
  // initializer_range and pad_token_id are read before, for every family); errors name `where`.
  void (*read)(const nlohmann::json& j, ModelConfig& c, const std::string& where);
  // ModelConfig -> this family's own config.json fields.
  void (*write)(const ModelConfig& c, nlohmann::json& j);
};

// The family config of `model_type`; an unknown one throws naming `where` and the supported types.
const FamilyConfig& family_config(const std::string& model_type, const std::string& where);
// Every registered family's, in registration order (config.cpp; model/family.h says how to add one).
const std::vector<const FamilyConfig*>& all_family_configs();
const FamilyConfig& distilbert_family_config();
const FamilyConfig& bert_family_config();
const FamilyConfig& roberta_family_config();
const FamilyConfig& mpnet_family_config();

}  // namespace emotune::model
