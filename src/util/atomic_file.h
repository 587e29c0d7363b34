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

// Temporary names beside a target carry a marker and the writer: ".NAME.emotune-tmp.HOST.PID" and
// ".NAME.emotune-old.HOST.PID", where HOST tags this host, boot and PID namespace (so a PID is only
// ever judged where it means something: not from another host on shared storage, nor from another
// container).

// Cleans up after emotune writers of this host that were killed (SIGKILL, power loss) in `dir`:
// removes their temporaries, and puts back an "emotune-old" directory whose NAME is missing (the writer
// died between moving the old NAME aside and moving the new one in), else removes it (NAME is the new,
// complete one). Never touches other programs' files, other hosts' or living writers' temporaries, or
// a kept run (KeptRun). Returns how many entries it removed or restored.
std::size_t clean_up_after_dead_writers(const std::filesystem::path& dir);

// The run that `train --overwrite` replaces, kept beside it as ".NAME.emotune-kept" until the new run
// has finished: discard() deletes it then; restore() puts it back when the new run fails (the
// destructor does this unless told otherwise); keep() leaves it beside a stopped, resumable new run,
// until that one finishes (discard_kept_run) or the user moves it back.
class KeptRun {
 public:
  // Moves `dir` (which must exist) aside. When a kept run is there already (an earlier replacement
  // never finished), that one stays the kept run and `dir`, the unfinished replacement, is deleted.
  explicit KeptRun(const std::filesystem::path& dir);
  static std::filesystem::path path_for(const std::filesystem::path& dir);
  const std::filesystem::path& path() const { return kept_; }
  void restore();  // replaces whatever is at `dir` now
  void discard();
  void keep();
  ~KeptRun();  // restores, unless discarded, kept or restored

 private:
  std::filesystem::path dir_, kept_;
  bool done_ = false;
};

// Deletes the run that `dir` replaced, if it is still kept (the replacement has now finished);
// returns whether there was one.
bool discard_kept_run(const std::filesystem::path& dir);

}  // namespace emotune::util
