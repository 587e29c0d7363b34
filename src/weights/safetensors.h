// The safetensors format: an 8-byte little-endian header length, a JSON header mapping tensor
// names to {dtype, shape, data_offsets}, then raw little-endian data. Reading memory-maps the file.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weights/safetensors_header.h"

namespace emotune::weights {


class SafetensorsFile {
 public:
  // Maps the file and validates the header; throws naming the file on any inconsistency.
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor as a new float32 CPU tensor (F32, F16 and BF16 supported).
  torch::Tensor load_f32(const std::string& name) const;
  // Copies tensor `name` into `dst` (converting to dst's dtype) and releases its mapped pages.
  void copy_into(const std::string& name, torch::Tensor& dst) const;
  const std::filesystem::path& path() const { return path_; }
  // An F32 tensor of `file` used in place: a read-only view of the mapping that keeps `file` mapped
  // while it lives, so only the pages actually read become resident. Undefined when the tensor is
  // not F32 or not aligned (the caller copies instead). Writing into it crashes: inference only.
  static torch::Tensor map_in_place(const std::shared_ptr<const SafetensorsFile>& file, const std::string& name);

 private:
  // A tensor viewing the mapping (copied only when misaligned); valid while *this lives.
  torch::Tensor load_view(const std::string& name) const;

  std::filesystem::path path_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  const std::uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, TensorInfo> tensors_;
};

// Writes float32 tensors with their names (header 8-byte aligned) to a temporary file in the
// same directory, then renames it over `path`.
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

}  // namespace emotune::weights
