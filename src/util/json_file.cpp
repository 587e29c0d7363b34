#include "util/json_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "util/errors.h"

namespace emotune::util {

namespace fs = std::filesystem;

std::string read_small_file(const fs::path& path, std::size_t max_bytes) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw NotFoundError("cannot read " + path.string() + ": no such file");
  if (fs::is_directory(status)) throw InputError(path.string() + " is a directory, not a file");
  if (!fs::is_regular_file(status)) throw InputError(path.string() + " is not a regular file");
  const auto size = fs::file_size(path, ec);
  if (ec) throw std::runtime_error("cannot read " + path.string() + ": " + ec.message());
  if (size > max_bytes)
    throw InputError(path.string() + " is too large (" + std::to_string(size) + " bytes; at most " +
                     std::to_string(max_bytes) + " expected)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) throw std::runtime_error("cannot read " + path.string());
  return bytes;
}

namespace {

// Parses with a callback that drops everything below max_depth (so nothing deep is ever built) and
// says whether it had to.
nlohmann::json parse_bounded(std::string_view text, std::size_t max_depth, bool& too_deep) {
  too_deep = false;
  const nlohmann::json::parser_callback_t keep = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (static_cast<std::size_t>(depth) > max_depth) too_deep = true;
    return !too_deep;
  };
  return nlohmann::json::parse(text.begin(), text.end(), keep);
}

}  // namespace

nlohmann::json parse_json(std::string_view text, std::size_t max_depth) {
  bool too_deep = false;
  try {
    nlohmann::json j = parse_bounded(text, max_depth, too_deep);
    if (!too_deep) return j;
  } catch (const nlohmann::json::exception&) {
  }
  return nlohmann::json(nlohmann::json::value_t::discarded);
}

std::string not_json_reason() {
  return "not valid JSON (or nests deeper than " + std::to_string(kMaxJsonDepth) + " levels)";
}

nlohmann::json read_json_file(const fs::path& path, std::size_t max_bytes) {
  const std::string bytes = read_small_file(path, max_bytes);
  bool too_deep = false;
  nlohmann::json j;
  try {
    j = parse_bounded(bytes, kMaxJsonDepth, too_deep);
  } catch (const nlohmann::json::exception& e) {
    throw InputError("invalid JSON in " + path.string() + ": " + e.what());
  }
  if (too_deep)
    throw InputError("invalid JSON in " + path.string() + ": nested more than " + std::to_string(kMaxJsonDepth) +
                     " levels deep");
  return j;
}

}  // namespace emotune::util
