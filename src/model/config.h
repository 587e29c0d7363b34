// DistilBERT configuration as read from and written to Hugging Face's config.json.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace emotune::model {

struct DistilBertConfig {
  int64_t vocab_size = 30522;
  int64_t max_position_embeddings = 512;
  int64_t dim = 768;
  int64_t n_layers = 6;
  int64_t n_heads = 12;
  int64_t hidden_dim = 3072;
  double dropout = 0.1;
  double attention_dropout = 0.1;
  double seq_classif_dropout = 0.2;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  std::string activation = "gelu";
  std::vector<std::string> labels;  // id2label in id order; empty for a base (MLM) checkpoint
  nlohmann::json raw;               // every field of the file, kept when writing it back

  // Reads and validates config.json; errors name the file and the field.
  static DistilBertConfig load(const std::filesystem::path& path);
  // The config.json of a sequence classifier with this config's labels.
  nlohmann::json to_classifier_json() const;
  // Overrides every dropout probability (training's --dropout).
  void set_all_dropouts(double p);
};

}  // namespace emotune::model
