// Writing files and directories so that a crash never leaves a half-written result:
// write beside the target under a temporary name, flush, then rename over it.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

namespace emotune::util {

// Writes `path` through `write`; on any failure the temporary file is removed and `path` is untouched.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// Fills a fresh temporary directory beside `dir` through `fill`, then moves it to `dir`,
// replacing an existing `dir` only when `overwrite` is set.
void write_directory_atomically(const std::filesystem::path& dir, bool overwrite,
                                const std::function<void(const std::filesystem::path&)>& fill);

}  // namespace emotune::util
