// Model families, as Hugging Face's auto classes know them: config.json's model_type picks one, and
// the family builds its sequence classifier.
//
// Adding a family touches these places, and no others:
//   1. src/model/NAME_config.cpp: its config.json fields (torch-free, like transformers'
//      configuration_NAME.py, so the config reader is fuzzed without libtorch); mpnet_config.cpp is
//      the one to copy.
//   2. src/model/NAME.h and NAME.cpp: its modules under Hugging Face's names and its Family
//      (model/mpnet.cpp is the model to copy). Attention goes through self_attention()
//      (model/encoder.h), whose every path (packed inference, packed training with gradients, the
//      accelerators' padded grid) honours an additive score bias: relative positions need no kernel.
//   3. Registration: one line in config.cpp's all_family_configs() and one in family.cpp's
//      all_families() (a unit test fails when the two lists differ), and its NAME_config()
//      declaration in config.h.
//   4. CMakeLists.txt: its two source files.
//   5. tests/families.json: a small config, its tokenizer files and transformers' class name. Every
//      per-family test (unit, oracle parity, Trainer parity, every command, GPU) iterates that table,
//      and a unit test fails when a registered family is missing from it.
//   6. README.md's table of supported models.
// Its tokenizer must be one emotune reads (text/tokenizer.h: WordPiece or byte-level BPE); a new kind
// of tokenizer is a change of its own.
#pragma once

#include <string>
#include <vector>

#include "model/classifier.h"
#include "model/config.h"

namespace emotune::model {

struct Family {
  const FamilyConfig& config;  // model_type, class names, config.json fields
  // The classifier; initialise = false leaves the large tensors untouched for weights loaded next.
  SequenceClassifier (*make)(const ModelConfig& c, bool initialise);
};

// The family of `model_type`; an unknown one throws naming `where` and the supported types.
const Family& find_family(const std::string& model_type, const std::string& where);
// Every registered family, in registration order.
const std::vector<const Family*>& all_families();

}  // namespace emotune::model
