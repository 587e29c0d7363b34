#include "util/json_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace emotune::util {

namespace fs = std::filesystem;

std::string read_small_file(const fs::path& path, std::size_t max_bytes) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw std::runtime_error("cannot read " + path.string() + ": no such file");
  if (fs::is_directory(status)) throw std::runtime_error(path.string() + " is a directory, not a file");
  if (!fs::is_regular_file(status)) throw std::runtime_error(path.string() + " is not a regular file");
  const auto size = fs::file_size(path, ec);
  if (ec) throw std::runtime_error("cannot read " + path.string() + ": " + ec.message());
  if (size > max_bytes)
    throw std::runtime_error(path.string() + " is too large (" + std::to_string(size) + " bytes; at most " +
                             std::to_string(max_bytes) + " expected)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) throw std::runtime_error("cannot read " + path.string());
  return bytes;
}

nlohmann::json read_json_file(const fs::path& path, std::size_t max_bytes) {
  const std::string bytes = read_small_file(path, max_bytes);
  try {
    return nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("invalid JSON in " + path.string() + ": " + e.what());
  }
}

}  // namespace emotune::util
