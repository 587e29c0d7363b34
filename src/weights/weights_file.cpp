#include "weights/weights_file.h"

#include <torch/serialize.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace emotune::weights {

namespace fs = std::filesystem;

namespace {

// torch.save's zip archive of a state dict -> its tensors by name.
std::map<std::string, torch::Tensor> read_torch_save(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K')
    throw std::runtime_error(path.string() +
                             ": not a zip archive (torch.save's legacy format, from torch < 1.6, is not read: "
                             "re-save it with a current torch or as safetensors)");
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": cannot read this torch.save archive: " + e.what());
  }
  if (!value.isGenericDict()) throw std::runtime_error(path.string() + ": expected a state dict (name -> tensor)");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      throw std::runtime_error(path.string() + ": expected a state dict (name -> tensor)");
    tensors.emplace(item.key().toStringRef(), item.value().toTensor());
  }
  return tensors;
}

}  // namespace

WeightsFile::WeightsFile(const fs::path& path) : path_(path) {
  if (path.extension() == ".safetensors") {
    safetensors_ = std::make_shared<const SafetensorsFile>(path);
    for (const auto& [name, info] : safetensors_->tensors()) shapes_.emplace(name, info.shape);
    return;
  }
  pickled_ = read_torch_save(path);
  for (const auto& [name, t] : pickled_) shapes_.emplace(name, t.sizes().vec());
}

fs::path WeightsFile::in_directory(const fs::path& dir) {
  for (const char* name : {"model.safetensors", "pytorch_model.bin"})
    if (fs::exists(dir / name)) return dir / name;
  throw std::runtime_error("no model.safetensors or pytorch_model.bin in model directory " + dir.string());
}

void WeightsFile::copy_into(const std::string& name, torch::Tensor& dst) const {
  if (safetensors_) return safetensors_->copy_into(name, dst);
  torch::NoGradGuard no_grad;
  dst.copy_(pickled_.at(name));
}

torch::Tensor WeightsFile::map_in_place(const std::string& name) const {
  return safetensors_ ? SafetensorsFile::map_in_place(safetensors_, name) : torch::Tensor();
}

}  // namespace emotune::weights
