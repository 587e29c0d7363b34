// Model families, as Hugging Face's auto classes know them: config.json's model_type picks one, and
// the family reads and writes its own config fields and builds its sequence classifier.
//
// Adding a family touches these places, and no others (MPNet needed exactly these five):
//   1. src/model/NAME.h and NAME.cpp: its config fields, its modules under Hugging Face's names, its
//      Family (model/mpnet.cpp is the model to copy). Attention goes through self_attention()
//      (model/encoder.h), whose every path (packed inference, packed training with gradients, the
//      accelerators' padded grid) honours an additive score bias: relative positions need no kernel.
//   2. family.cpp: one line registering it.
//   3. CMakeLists.txt: its source file.
//   4. tests/families.json: a small config, its tokenizer files and transformers' class name. Every
//      per-family test (unit, oracle parity, Trainer parity, every command, GPU) iterates that table,
//      and a unit test fails when a registered family is missing from it.
//   5. README.md's table of supported models.
// Its tokenizer must be one emotune reads (text/tokenizer.h: WordPiece or byte-level BPE); a new kind
// of tokenizer is a change of its own.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
// Every registered family, in registration order.
const std::vector<const Family*>& all_families();

}  // namespace emotune::model
