// Reading the small JSON files of model and run directories (config.json, tokenizer_config.json,
// thresholds.json, trainer_state.json): every failure names the file. And parsing any JSON from
// outside with a bound on its nesting: nlohmann's parser is iterative, but copying, comparing and
// printing a value recurse, so a 1 MB body of '[' would exhaust the stack.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace emotune::util {

// The whole of `path` as bytes. Throws naming the file when it is missing, not a regular file (a
// directory, /dev/zero) or larger than `max_bytes`.
std::string read_small_file(const std::filesystem::path& path, std::size_t max_bytes = std::size_t{64} << 20);

// Every JSON document emotune reads is shallow (tokenizer.json: 6 levels).
constexpr std::size_t kMaxJsonDepth = 64;

// `text` parsed as JSON, or a discarded value (is_discarded()) when it is not JSON or nests arrays
// and objects deeper than `max_depth`. Never throws for bad input.
nlohmann::json parse_json(std::string_view text, std::size_t max_depth = kMaxJsonDepth);
// What a caller of parse_json says of a discarded value: "not valid JSON (or nests deeper than 64 levels)".
std::string not_json_reason();

// `path` parsed as JSON (read through read_small_file, nesting bounded as parse_json); invalid or
// too deeply nested JSON throws InputError naming the file (a missing file: NotFoundError).
nlohmann::json read_json_file(const std::filesystem::path& path, std::size_t max_bytes = std::size_t{64} << 20);

}  // namespace emotune::util
