// Model families, as Hugging Face's auto classes know them: config.json's model_type picks one, and
// the family reads and writes its own config fields and builds its sequence classifier. Adding a
// family is one model file (like model/bert.cpp) and one entry in family.cpp.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "model/classifier.h"
#include "model/config.h"

namespace emotune::model {

struct Family {
  const char* model_type;    // "distilbert"
  const char* architecture;  // "DistilBertForSequenceClassification"
  const char* tokenizer_class;  // tokenizer_config.json's, as transformers picks it ("DistilBertTokenizer")
  // This family's own config.json fields -> ModelConfig (vocab_size, max_position_embeddings,
  // initializer_range and pad_token_id are read before, for every family); errors name `where`.
  void (*read_config)(const nlohmann::json& j, ModelConfig& c, const std::string& where);
  // ModelConfig -> this family's own config.json fields.
  void (*write_config)(const ModelConfig& c, nlohmann::json& j);
  // The classifier; initialise = false leaves the large tensors untouched for weights loaded next.
  SequenceClassifier (*make)(const ModelConfig& c, bool initialise);
};

// The family of `model_type`; an unknown one throws naming `where` and the supported types.
const Family& find_family(const std::string& model_type, const std::string& where);

}  // namespace emotune::model
