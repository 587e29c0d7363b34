#include "util/atomic_file.h"

#include <unistd.h>

#include <fstream>
#include <stdexcept>

namespace emotune::util {

namespace fs = std::filesystem;

namespace {

fs::path temp_sibling(const fs::path& target, const char* tag) {
  fs::path name = target.filename();
  if (name.empty()) name = target.parent_path().filename();
  return target.parent_path() / ("." + name.string() + tag + std::to_string(::getpid()));
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const fs::path tmp = temp_sibling(path, ".tmp.");
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
      write(out);
      out.flush();
      if (!out) throw std::runtime_error("error while writing " + path.string() + " (disk full?)");
    }
    fs::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_text_atomically(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& out) { out << text; });
}

void write_directory_atomically(const fs::path& dir_in, bool overwrite, const std::function<void(const fs::path&)>& fill) {
  const fs::path dir = dir_in.has_filename() ? dir_in : dir_in.parent_path();
  if (fs::exists(dir) && !overwrite)
    throw std::runtime_error("output directory " + dir.string() + " already exists (use --overwrite to replace it)");
  if (!dir.parent_path().empty()) fs::create_directories(dir.parent_path());
  const fs::path tmp = temp_sibling(dir, ".tmp.");
  const fs::path old = temp_sibling(dir, ".old.");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    fs::create_directory(tmp);
    fill(tmp);
    if (fs::exists(dir)) fs::rename(dir, old);
    fs::rename(tmp, dir);
    fs::remove_all(old, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    if (!fs::exists(dir) && fs::exists(old)) fs::rename(old, dir, ec);
    throw;
  }
}

}  // namespace emotune::util
