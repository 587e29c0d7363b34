// Reading the small JSON files of model and run directories (config.json, tokenizer_config.json,
// thresholds.json, trainer_state.json): every failure names the file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace emotune::util {

// The whole of `path` as bytes. Throws naming the file when it is missing, not a regular file (a
// directory, /dev/zero) or larger than `max_bytes`.
std::string read_small_file(const std::filesystem::path& path, std::size_t max_bytes = std::size_t{64} << 20);

// `path` parsed as JSON (read through read_small_file); invalid JSON throws naming the file.
nlohmann::json read_json_file(const std::filesystem::path& path, std::size_t max_bytes = std::size_t{64} << 20);

}  // namespace emotune::util
