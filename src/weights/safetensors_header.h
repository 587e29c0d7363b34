// The JSON header of a safetensors file, read and checked without libtorch (so that it can be fuzzed
// on its own): every tensor's dtype, shape and byte range must agree and lie inside the data section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace emotune::weights {

struct TensorInfo {
  std::string dtype;  // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  std::size_t begin = 0, end = 0;  // byte offsets into the data section
};

// Bytes per element of a safetensors dtype; 0 for an unknown one.
std::size_t safetensors_dtype_size(const std::string& dtype);

// The tensors of `header_json` (without __metadata__) for a data section of `data_size` bytes; throws
// std::runtime_error naming the tensor and what is wrong.
std::map<std::string, TensorInfo> parse_safetensors_header(std::string_view header_json, std::size_t data_size);

}  // namespace emotune::weights
