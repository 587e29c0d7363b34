// The tensors of a checkpoint, by name: model.safetensors (memory-mapped) or, where a directory has
// only that, pytorch_model.bin (torch.save's zip format, read whole through libtorch's unpickler).
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weights/safetensors.h"

namespace emotune::weights {

class WeightsFile {
 public:
  // Opens a .safetensors or a torch.save file (chosen by its extension); throws naming the file.
  explicit WeightsFile(const std::filesystem::path& path);

  // The weights file of a model directory: model.safetensors, else pytorch_model.bin; throws when neither exists.
  static std::filesystem::path in_directory(const std::filesystem::path& dir);

  const std::map<std::string, std::vector<int64_t>>& shapes() const { return shapes_; }
  // Copies tensor `name` into `dst`, converting to dst's dtype.
  void copy_into(const std::string& name, torch::Tensor& dst) const;
  // A read-only float32 view used in place of a copy (safetensors only: see SafetensorsFile::map_in_place);
  // undefined where that is not possible.
  torch::Tensor map_in_place(const std::string& name) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::shared_ptr<const SafetensorsFile> safetensors_;
  std::map<std::string, torch::Tensor> pickled_;  // pytorch_model.bin's tensors
  std::map<std::string, std::vector<int64_t>> shapes_;
};

}  // namespace emotune::weights
