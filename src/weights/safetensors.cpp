#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/atomic_file.h"

namespace emotune::weights {

using json = nlohmann::json;


SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string where = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + where + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot stat " + where);
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw std::runtime_error(where + ": truncated safetensors file (" + std::to_string(size_) + " bytes)");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw std::runtime_error("cannot map " + where);
  }
  const auto* bytes = static_cast<const std::uint8_t*>(map_);
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size_ - 8) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw std::runtime_error(where + ": header length " + std::to_string(header_len) + " runs past the end of the file");
  }
  data_ = bytes + 8 + header_len;
  const std::size_t data_size = size_ - 8 - header_len;
  try {
    tensors_ = parse_safetensors_header(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len), data_size);
  } catch (const std::exception& e) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw std::runtime_error(where + ": " + e.what());
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
  map_ = nullptr;
}

torch::Tensor SafetensorsFile::load_f32(const std::string& name) const {
  const auto view = load_view(name);
  // The view aliases the mapping: clone/convert makes the copy the caller keeps.
  return view.scalar_type() == torch::kFloat32 ? view.clone() : view.to(torch::kFloat32);
}

torch::Tensor SafetensorsFile::load_view(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw std::runtime_error(path_.string() + ": no tensor '" + name + "'");
  const TensorInfo& info = it->second;
  torch::ScalarType type;
  if (info.dtype == "F32")
    type = torch::kFloat32;
  else if (info.dtype == "F16")
    type = torch::kFloat16;
  else if (info.dtype == "BF16")
    type = torch::kBFloat16;
  else
    throw std::runtime_error(path_.string() + ": tensor '" + name + "' has dtype " + info.dtype +
                             " (supported: F32, F16, BF16)");
  // from_blob views the mapping (no copy). The data offsets need not be aligned, so copy through memcpy-safe byte tensors when they are not.
  const void* src = data_ + info.begin;
  torch::Tensor view;
  if (reinterpret_cast<std::uintptr_t>(src) % torch::elementSize(type) == 0) {
    view = torch::from_blob(const_cast<void*>(src), info.shape, torch::TensorOptions().dtype(type));
  } else {
    view = torch::empty(info.shape, torch::TensorOptions().dtype(type));
    std::memcpy(view.data_ptr(), src, info.end - info.begin);
  }
  return view;
}

torch::Tensor SafetensorsFile::map_in_place(const std::shared_ptr<const SafetensorsFile>& file,
                                            const std::string& name) {
  const TensorInfo& info = file->tensors_.at(name);
  const void* src = file->data_ + info.begin;
  if (info.dtype != "F32" || reinterpret_cast<std::uintptr_t>(src) % alignof(float) != 0) return {};
  return torch::from_blob(const_cast<void*>(src), info.shape, [file](void*) {}, torch::kFloat32);
}

void SafetensorsFile::copy_into(const std::string& name, torch::Tensor& dst) const {
  dst.copy_(load_view(name));
  // The mapped pages count towards resident memory until released; drop them now that the
  // parameter holds the values, so loading never needs the model twice in memory.
  const TensorInfo& info = tensors_.at(name);
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto begin = reinterpret_cast<std::uintptr_t>(data_ + info.begin);
  const auto end = reinterpret_cast<std::uintptr_t>(data_ + info.end);
  begin = (begin + page - 1) / page * page;
  if (end > begin + page) ::madvise(reinterpret_cast<void*>(begin), (end - begin) / page * page, MADV_DONTNEED);
}

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::vector<torch::Tensor> contiguous;
  std::size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    const std::size_t n = static_cast<std::size_t>(c.numel()) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    contiguous.push_back(std::move(c));
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  util::write_file_atomically(path, [&](std::ostream& out) {
    std::uint64_t len = text.size();
    char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
    out.write(le, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : contiguous) out.write(static_cast<const char*>(c.data_ptr()), c.numel() * 4);
  });
}

}  // namespace emotune::weights
