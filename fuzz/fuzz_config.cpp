// config.json as ModelConfig::load reads it, every family's fields included: a config comes back
// valid or one std::runtime_error names what is wrong. What loads writes back (to_classifier_json)
// as a file that loads to the same configuration and writes back unchanged.
#include <cstdint>
#include <stdexcept>

#include "memfile.h"
#include "model/config.h"

namespace {

bool same(const emotune::model::ModelConfig& a, const emotune::model::ModelConfig& b) {
  return a.model_type == b.model_type && a.vocab_size == b.vocab_size &&
         a.max_position_embeddings == b.max_position_embeddings && a.position_offset == b.position_offset &&
         a.hidden_size == b.hidden_size && a.num_layers == b.num_layers && a.num_heads == b.num_heads &&
         a.intermediate_size == b.intermediate_size && a.type_vocab_size == b.type_vocab_size &&
         a.hidden_dropout == b.hidden_dropout && a.attention_dropout == b.attention_dropout &&
         a.classifier_dropout == b.classifier_dropout && a.layer_norm_eps == b.layer_norm_eps &&
         a.pad_token_id == b.pad_token_id && a.activation == b.activation &&
         a.relative_attention_num_buckets == b.relative_attention_num_buckets && a.labels == b.labels &&
         a.single_label == b.single_label;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  MemFile file(data, size);
  emotune::model::ModelConfig config;
  try {
    config = emotune::model::ModelConfig::load(file.path());
  } catch (const std::runtime_error&) {
    return 0;
  }
  if (config.max_tokens() < 2 || config.hidden_size % config.num_heads != 0) __builtin_trap();
  const nlohmann::json written = config.to_classifier_json();
  const auto reread = emotune::model::ModelConfig::parse(written, "written");  // must not throw
  if (!same(config, reread)) __builtin_trap();
  if (reread.to_classifier_json() != written) __builtin_trap();
  return 0;
}
