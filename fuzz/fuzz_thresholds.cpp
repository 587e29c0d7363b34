// thresholds.json: every value read is in [0, 1], one per label; anything else throws.
#include <cstdint>
#include <stdexcept>

#include "infer/thresholds.h"
#include "memfile.h"
#include "data/labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  MemFile file(data, size);
  const auto& labels = emotune::data::goemotions_labels();
  try {
    const auto t = emotune::infer::load_thresholds_file(file.path(), labels);
    if (t.size() != labels.size()) __builtin_trap();
    for (float v : t)
      if (!(v >= 0 && v <= 1)) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
