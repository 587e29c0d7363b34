#include "util/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <regex>

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
    throw std::runtime_error("output directory " + dir.string() + " already exists (use {overwrite} to replace it)");
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

namespace {

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

}  // namespace

std::size_t clean_up_after_dead_writers(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  static const std::regex pattern(R"(\.(.+)\.(tmp|old)\.([0-9]{1,9}))");
  std::vector<std::pair<fs::path, std::smatch>> found;
  std::size_t cleaned = 0;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, pattern)) continue;
    long pid = 0;
    const std::string digits = m[3];
    std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (pid == ::getpid() || process_alive(pid)) continue;
    const fs::path original = dir / m[1].str();
    if (m[2] == "old" && !fs::exists(original, ec))
      fs::rename(entry.path(), original, ec);
    else
      fs::remove_all(entry.path(), ec);
    cleaned += !ec;
  }
  return cleaned;
}

MovedAside::MovedAside(const fs::path& dir) : dir_(dir), aside_(temp_sibling(dir, ".old.")) {
  std::error_code ec;
  fs::remove_all(aside_, ec);
  fs::rename(dir_, aside_);
}

void MovedAside::restore() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::rename(aside_, dir_, ec);
  done_ = true;
}

void MovedAside::discard() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(aside_, ec);
  done_ = true;
}

MovedAside::~MovedAside() { restore(); }

}  // namespace emotune::util
