// Writing files and directories so that a crash never leaves a half-written result:
// write beside the target under a temporary name, flush and fsync it, rename it over the target,
// then fsync the folder (so that a power loss leaves the old or the new, never an empty file).
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <cstddef>
#include <string>

namespace emotune::util {

// Writes `path` through `write`; on any failure the temporary file is removed and `path` is untouched.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// Fills a fresh temporary directory beside `dir` through `fill`, then moves it to `dir`,
// replacing an existing `dir` only when `overwrite` is set.
void write_directory_atomically(const std::filesystem::path& dir, bool overwrite,
                                const std::function<void(const std::filesystem::path&)>& fill);

// Cleans up after writers that were killed (SIGKILL, power loss) in `dir`: removes the temporaries
// ".NAME.tmp.PID" whose process is gone, and puts back a ".NAME.old.PID" whose NAME is missing (the
// writer died between moving the old NAME aside and moving the new one in), else removes it.
// Returns how many entries it removed or restored.
std::size_t clean_up_after_dead_writers(const std::filesystem::path& dir);

// The path that write_directory_atomically moves an existing `dir` to while it writes: with
// move_aside/restore/discard, a caller can keep an old directory until a long job has succeeded.
class MovedAside {
 public:
  // Moves `dir` (which must exist) to ".NAME.old.PID" beside it.
  explicit MovedAside(const std::filesystem::path& dir);
  // Puts the old directory back, replacing whatever is at `dir` now.
  void restore();
  // Deletes the old directory: the new one has taken its place for good.
  void discard();
  ~MovedAside();  // restores, unless discarded or restored

 private:
  std::filesystem::path dir_, aside_;
  bool done_ = false;
};

}  // namespace emotune::util
