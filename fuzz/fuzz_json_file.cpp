// The JSON files of model and run directories (config.json, tokenizer_config.json, ...) as
// read_json_file reads them: a value comes back nested at most kMaxJsonDepth deep, or one
// std::runtime_error; copying, comparing and printing the value (which recurse) never exhaust
// the stack.
#include <cstdint>
#include <stdexcept>

#include "memfile.h"
#include "util/json_file.h"

namespace {

std::size_t depth(const nlohmann::json& j) {
  std::size_t deepest = 0;
  if (j.is_structured())
    for (const auto& child : j) deepest = std::max(deepest, depth(child));
  return j.is_structured() ? deepest + 1 : 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  MemFile file(data, size);
  try {
    const nlohmann::json j = emotune::util::read_json_file(file.path());
    if (depth(j) > emotune::util::kMaxJsonDepth) __builtin_trap();
    const nlohmann::json copy = j;
    if (copy != j) __builtin_trap();
    (void)j.dump();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
