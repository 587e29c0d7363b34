#include "monitor/stream.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "monitor/message.h"
#include "util/errors.h"

namespace emotune::monitor {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kChunk = 2048;  // as predict: enough texts that sorting by length leaves little padding
constexpr std::size_t kListedBadLines = 20;

class Stream {
 public:
  Stream(infer::Predictor& predictor, Monitor& monitor, std::ostream& alerts, const StreamOptions& o)
      : predictor_(predictor), monitor_(monitor), alerts_(alerts), o_(o) {}

  void add(Message m) {
    texts_.push_back(m.text);
    if (!o_.keep_text) m.text.clear();
    messages_.push_back(std::move(m));
    if (texts_.size() == kChunk) score_pending();
  }

  void score_pending() {
    if (texts_.empty()) return;
    const auto preds = predictor_.predict(texts_, o_.batch_size, o_.streams);
    for (std::size_t i = 0; i < preds.size(); ++i)
      for (const auto& alert : monitor_.add(messages_[i], preds[i].probs))
        alerts_ << alert_json(alert).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    alerts_.flush();
    texts_.clear();
    messages_.clear();
  }

  void write_report() {
    if (o_.report_dir.empty()) return;
    auto info = o_.report;
    info.bad_lines = summary_.bad_lines;
    monitor::write_report(monitor_, info, o_.report_dir.string());
  }

  // While following, the report is brought up to date when the input pauses, at most every few seconds.
  void on_pause() {
    score_pending();
    if (!o_.follow || Clock::now() - last_report_ < std::chrono::seconds(5)) return;
    write_report();
    last_report_ = Clock::now();
  }

  void finish() {
    score_pending();
    write_report();
  }

  void bad_line(std::size_t number, const std::string& problem) {
    const std::string where = "input line " + std::to_string(number) + ": " + problem;
    if (!o_.skip_bad_lines) {
      finish();
      throw InputError(where + " ({skip_bad_lines} skips such lines)");
    }
    ++summary_.bad_lines;
    if (summary_.first_bad_lines.size() < kListedBadLines) {
      summary_.first_bad_lines.push_back(number);
      spdlog::warn("{} (skipped)", printable(where));
    }
  }

  const StreamSummary& summary() const { return summary_; }

 private:
  infer::Predictor& predictor_;
  Monitor& monitor_;
  std::ostream& alerts_;
  const StreamOptions& o_;
  std::vector<Message> messages_;
  std::vector<std::string> texts_;
  StreamSummary summary_;
  Clock::time_point last_report_ = Clock::now() - std::chrono::hours(1);
};

}  // namespace

StreamSummary run_stream(LineReader& reader, infer::Predictor& predictor, Monitor& monitor, std::ostream& alerts,
                         const StreamOptions& o) {
  Stream stream(predictor, monitor, alerts, o);
  std::string line;
  for (;;) {
    const auto got = reader.next(line);
    if (got == LineReader::Got::End) break;
    if (got == LineReader::Got::Idle) {
      stream.on_pause();
      continue;
    }
    if (reader.too_long()) {
      stream.bad_line(reader.line_number(), "longer than " + std::to_string(LineReader::kMaxLine) + " bytes");
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    try {
      stream.add(parse_message(line));
    } catch (const BadLine& e) {
      stream.bad_line(reader.line_number(), e.what());
    }
  }
  stream.finish();
  return stream.summary();
}

}  // namespace emotune::monitor
