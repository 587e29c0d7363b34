#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <regex>

#include <fstream>
#include <stdexcept>

namespace emotune::util {

namespace fs = std::filesystem;

namespace {

// This host, boot and PID namespace, as 12 hex digits (FNV-1a): PIDs compare only under one tag.
const std::string& writer_host() {
  static const std::string tag = [] {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::string identity = host;
    std::ifstream boot("/proc/sys/kernel/random/boot_id");
    std::string boot_id;
    std::getline(boot, boot_id);
    identity += "/" + boot_id;
    struct stat pid_namespace {};
    if (::stat("/proc/self/ns/pid", &pid_namespace) == 0) identity += "/" + std::to_string(pid_namespace.st_ino);
    std::uint64_t h = 14695981039346656037ULL;
    for (unsigned char c : identity) h = (h ^ c) * 1099511628211ULL;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return std::string(hex, 12);
  }();
  return tag;
}

fs::path name_of(const fs::path& target) {
  return target.filename().empty() ? target.parent_path().filename() : target.filename();
}

// ".NAME.emotune-KIND.HOST.PID" beside `target`.
fs::path temp_sibling(const fs::path& target, const char* kind) {
  return target.parent_path() /
         ("." + name_of(target).string() + ".emotune-" + kind + "." + writer_host() + "." + std::to_string(::getpid()));
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
  const fs::path tmp = temp_sibling(path, "tmp");
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
  const fs::path tmp = temp_sibling(dir, "tmp");
  const fs::path old = temp_sibling(dir, "old");
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
  static const std::regex pattern(R"(\.(.+)\.emotune-(tmp|old)\.([0-9a-f]{12})\.([0-9]{1,9}))");
  std::size_t cleaned = 0;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, pattern) || m[3] != writer_host()) continue;
    long pid = 0;
    const std::string digits = m[4];
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

fs::path KeptRun::path_for(const fs::path& dir) {
  const fs::path d = dir.has_filename() ? dir : dir.parent_path();
  return d.parent_path() / ("." + name_of(d).string() + ".emotune-kept");
}

KeptRun::KeptRun(const fs::path& dir) : dir_(dir.has_filename() ? dir : dir.parent_path()), kept_(path_for(dir)) {
  if (fs::exists(kept_)) {
    fs::remove_all(dir_);  // an unfinished replacement of the kept run
  } else {
    fs::rename(dir_, kept_);
    sync_to_disk(parent_or_here(dir_));
  }
}

void KeptRun::restore() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::rename(kept_, dir_, ec);
  done_ = true;
}

void KeptRun::discard() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(kept_, ec);
  done_ = true;
}

void KeptRun::keep() { done_ = true; }

KeptRun::~KeptRun() { restore(); }

bool discard_kept_run(const fs::path& dir) {
  std::error_code ec;
  const fs::path kept = KeptRun::path_for(dir);
  if (!fs::exists(kept, ec)) return false;
  fs::remove_all(kept, ec);
  return !ec;
}

}  // namespace emotune::util
