// safetensors headers: the tensors of one that parses lie inside the data section, agree with
// their shapes and share no bytes; anything else throws.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>
#include <string_view>

#include "weights/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t data_size = std::size_t{1} << (data[0] % 40);
  try {
    const auto tensors = emotune::weights::parse_safetensors_header(
        std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), data_size);
    for (const auto& [name, t] : tensors) {
      if (t.begin > t.end || t.end > data_size) __builtin_trap();
      std::size_t n = emotune::weights::safetensors_dtype_size(t.dtype);
      for (auto d : t.shape) n *= static_cast<std::size_t>(d);
      if (n != t.end - t.begin) __builtin_trap();
    }
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    for (const auto& [name, t] : tensors) ranges.emplace_back(t.begin, t.end);
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
