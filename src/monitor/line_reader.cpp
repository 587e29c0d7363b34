#include "monitor/line_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "util/errors.h"
#include "util/stop_signals.h"

namespace emotune::monitor {

LineReader::LineReader(const std::string& path, bool follow) : follow_(follow) {
  if (path.empty() || path == "-") {
    fd_ = STDIN_FILENO;
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError("cannot open {input} " + path + ": " + std::strerror(errno));
    owned_ = true;
  }
  struct stat st {};
  regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
}

LineReader::~LineReader() {
  if (owned_) ::close(fd_);
}

LineReader::Got LineReader::next(std::string& line) {
  for (;;) {
    too_long_ = false;
    const auto nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      ++line_number_;
      if (skipping_) {  // the rest of a line already reported as too long
        skipping_ = false;
        pos_ = nl + 1;
        --line_number_;
        continue;
      }
      too_long_ = nl - pos_ > kMaxLine;
      if (too_long_)
        line.clear();
      else
        line.assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      return Got::Line;
    }
    buf_.erase(0, pos_);
    pos_ = 0;
    if (buf_.size() > kMaxLine) {
      buf_.clear();
      if (!skipping_) {
        skipping_ = true;
        ++line_number_;
        too_long_ = true;
        line.clear();
        return Got::Line;
      }
    }
    if (util::StopSignals::received()) return Got::End;
    if (follow_ && !regular_) {
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, 200);
      if (ready == 0) return Got::Idle;
      if (ready < 0 && errno == EINTR) continue;
    }
    char chunk[65536];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n > 0) {
      if (!skipping_) buf_.append(chunk, static_cast<std::size_t>(n));
      else if (const auto* nlp = static_cast<const char*>(std::memchr(chunk, '\n', static_cast<std::size_t>(n))))
        buf_.append(nlp, static_cast<std::size_t>(chunk + n - nlp));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("reading the input: ") + std::strerror(errno));
    if (follow_ && regular_) {  // the end of the file so far
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      return Got::Idle;
    }
    if (!buf_.empty() && !skipping_) {
      ++line_number_;
      line.swap(buf_);
      buf_.clear();
      return Got::Line;
    }
    return Got::End;
  }
}

}  // namespace emotune::monitor
