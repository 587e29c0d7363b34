#include "util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
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

// Makes what was written to `path` (a file's bytes, a directory's entries) durable before the
// rename that publishes it: without it, a power loss after the rename can leave an empty file under
// the final name. Filesystems that cannot sync a directory (EINVAL) are left as they are.
void sync_to_disk(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string() + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != EROFS)
    throw std::runtime_error("cannot sync " + path.string() + " to disk: " + std::strerror(err));
}

fs::path parent_or_here(const fs::path& path) { return path.parent_path().empty() ? fs::path(".") : path.parent_path(); }

// Every file and folder under `dir`, and `dir` itself.
void sync_tree(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() || entry.is_directory()) sync_to_disk(entry.path());
  sync_to_disk(dir);
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
    sync_to_disk(tmp);
    fs::rename(tmp, path);
    sync_to_disk(parent_or_here(path));
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
    sync_tree(tmp);
    if (fs::exists(dir)) fs::rename(dir, old);
    fs::rename(tmp, dir);
    sync_to_disk(parent_or_here(dir));
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
