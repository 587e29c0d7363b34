#include "weights/safetensors_header.h"
#include "util/json_file.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace emotune::weights {

using json = nlohmann::json;

std::size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

namespace {

// Two tensors sharing bytes would alias each other once loaded (a write to one changes the other).
void check_no_overlap(const std::map<std::string, TensorInfo>& tensors) {
  std::vector<std::pair<const std::string*, const TensorInfo*>> by_offset;
  for (const auto& [name, info] : tensors) by_offset.emplace_back(&name, &info);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& [prev_name, prev] = by_offset[i - 1];
    const auto& [name, info] = by_offset[i];
    if (info->begin < prev->end)
      throw std::runtime_error("tensors '" + *prev_name + "' and '" + *name + "' share bytes: data_offsets [" +
                               std::to_string(prev->begin) + ", " + std::to_string(prev->end) + "] and [" +
                               std::to_string(info->begin) + ", " + std::to_string(info->end) + "] overlap");
  }
}

}  // namespace

std::map<std::string, TensorInfo> parse_safetensors_header(std::string_view header_json, std::size_t data_size) {
  const json header = util::parse_json(header_json);
  if (header.is_discarded()) throw std::runtime_error("the header is " + util::not_json_reason());
  if (!header.is_object()) throw std::runtime_error("header is not a JSON object");
  std::map<std::string, TensorInfo> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw std::runtime_error("tensor '" + name + "' lacks dtype, shape or data_offsets");
    TensorInfo info;
    if (!entry.at("dtype").is_string()) throw std::runtime_error("tensor '" + name + "': dtype is not a string");
    info.dtype = entry.at("dtype").get<std::string>();
    const std::size_t esize = safetensors_dtype_size(info.dtype);
    if (esize == 0) throw std::runtime_error("tensor '" + name + "': unknown dtype '" + info.dtype + "'");
    if (!entry.at("shape").is_array()) throw std::runtime_error("tensor '" + name + "': shape is not a list");
    std::size_t bytes = esize;  // the product can only be checked for overflow as it grows
    for (const auto& d : entry.at("shape")) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max()))
        throw std::runtime_error("tensor '" + name + "': bad shape");
      info.shape.push_back(d.get<int64_t>());
      if (__builtin_mul_overflow(bytes, d.get<std::size_t>(), &bytes))
        throw std::runtime_error("tensor '" + name + "': shape too large");
    }
    const json& off = entry.at("data_offsets");
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw std::runtime_error("tensor '" + name + "': data_offsets must be two non-negative integers");
    info.begin = off[0].get<std::size_t>();
    info.end = off[1].get<std::size_t>();
    if (info.begin > info.end || info.end > data_size)
      throw std::runtime_error("tensor '" + name + "': data_offsets [" + std::to_string(info.begin) + ", " +
                               std::to_string(info.end) + "] lie outside the " + std::to_string(data_size) +
                               "-byte data section");
    if (info.end - info.begin != bytes)
      throw std::runtime_error("tensor '" + name + "': " + std::to_string(info.end - info.begin) + " bytes for a " +
                               info.dtype + " tensor of " + std::to_string(bytes / esize) + " values");
    tensors.emplace(name, std::move(info));
  }
  check_no_overlap(tensors);
  return tensors;
}

}  // namespace emotune::weights
