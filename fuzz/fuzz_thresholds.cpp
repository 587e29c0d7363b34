// thresholds.json and calibration.json, the two files of a model directory that set its scores:
// every threshold read is in [0, 1], one per label; every calibration has one temperature in
// [1e-3, 1e3] and one finite bias per label; anything else throws.
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "infer/calibration.h"
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
  try {
    const auto c = emotune::infer::load_calibration_file(file.path(), labels);
    if (c.temperature.size() != labels.size() || c.bias.size() != labels.size()) __builtin_trap();
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (!(c.temperature[i] >= 1e-3f && c.temperature[i] <= 1e3f) || !std::isfinite(c.bias[i])) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
