// Lines of a file or stdin, for `emotune monitor`: a file read whole or followed as it grows.
#pragma once

#include <cstddef>
#include <string>

namespace emotune::monitor {

// Lines of a file or stdin. With follow, the end of a regular file is a pause (Idle), not the end: the
// file is read again as it grows, until SIGINT/SIGTERM (util/stop_signals.h). Without follow, or at the end of a pipe, the
// last unterminated line is a line too. Lines over kMaxLine bytes come back empty, flagged too_long.
class LineReader {
 public:
  static constexpr std::size_t kMaxLine = std::size_t{1} << 20;
  enum class Got { Line, Idle, End };

  // path "" or "-": stdin. A file that cannot be opened is an InputError naming it.
  LineReader(const std::string& path, bool follow);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  Got next(std::string& line);
  std::size_t line_number() const { return line_number_; }
  bool too_long() const { return too_long_; }

 private:
  int fd_ = -1;
  bool owned_ = false, follow_, regular_ = false;
  std::string buf_;
  std::size_t pos_ = 0, line_number_ = 0;
  bool skipping_ = false, too_long_ = false;
};

}  // namespace emotune::monitor
