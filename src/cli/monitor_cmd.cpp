// `emotune monitor`: emotions of a stream of messages over time, per source, with alert rules and a
// dashboard (see monitor/monitor.h, monitor/rules.h, monitor/dashboard.h).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <spdlog/spdlog.h>
#include <thread>

#include "cli/commands.h"
#include "fetch/resolve.h"
#include "infer/predictor.h"
#include "infer/thresholds.h"
#include "runtime/runtime.h"
#include "monitor/dashboard.h"
#include "monitor/monitor.h"
#include "monitor/rules.h"

namespace emotune::cli {

namespace {

struct MonitorArgs {
  std::string model_dir;
  std::string input;
  bool follow = false;
  std::string window;
  std::size_t last = 0;
  std::string rules;
  std::string alerts;
  std::string report;
  bool keep_text = false;
  bool skip_bad_lines = false;
  std::size_t batch_size = 32;
  int threads = 0;
  std::string device = "cpu";
  std::string precision;
  bool offline = false;
};

std::atomic<bool> g_stop{false};  // set by SIGINT/SIGTERM; the signal handler can touch nothing else
extern "C" void request_stop(int) { g_stop = true; }

// Lines of a file or stdin. With follow, the end of a regular file is a pause (Idle), not the end: the
// file is read again as it grows, until SIGINT/SIGTERM. Without follow, or at the end of a pipe, the
// last unterminated line is a line too. Lines over kMaxLine bytes come back empty, flagged too_long.
class LineReader {
 public:
  static constexpr std::size_t kMaxLine = std::size_t{1} << 20;
  enum class Got { Line, Idle, End };

  LineReader(const std::string& path, bool follow) : follow_(follow) {
    if (path.empty() || path == "-") {
      fd_ = STDIN_FILENO;
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) throw UserError("cannot open --input " + path + ": " + std::strerror(errno));
      owned_ = true;
    }
    struct stat st {};
    regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  }
  ~LineReader() {
    if (owned_) ::close(fd_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  Got next(std::string& line) {
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
      if (g_stop) return Got::End;
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
  std::size_t line_number() const { return line_number_; }
  bool too_long() const { return too_long_; }

 private:
  int fd_ = -1;
  bool owned_ = false, follow_, regular_ = false;
  std::string buf_;
  std::size_t pos_ = 0, line_number_ = 0;
  bool skipping_ = false, too_long_ = false;
};

struct Pending {
  std::vector<monitor::Message> messages;
  std::vector<std::string> texts;
};

int run_monitor(const MonitorArgs& a) {
  monitor::Window window;
  std::string window_text;
  if (!a.window.empty()) {
    const auto d = monitor::parse_duration(a.window);
    if (!d) throw UserError("--window must be a duration such as 30m, 24h or 7d (got '" + a.window + "')");
    window.span_ms = *d;
    window_text = a.window;
  } else {
    window.last = a.last ? a.last : 100;
    window_text = "last " + std::to_string(window.last) + " messages";
  }
  const auto threads = static_cast<std::size_t>(runtime::configure_threads(a.threads));
  const torch::Device device = runtime::resolve_device(a.device);
  model::ModelBundle bundle = model::load_model_dir(a.model_dir, model::inference_options(a.precision, device));
  infer::Predictor predictor(bundle, device);
  const auto thresholds = infer::load_thresholds(a.model_dir, bundle.labels());
  std::vector<monitor::Rule> rules;
  if (!a.rules.empty()) {
    try {
      rules = monitor::load_rules(a.rules, bundle.labels());
    } catch (const std::runtime_error& e) {
      throw UserError(std::string("--rules ") + e.what());
    }
  }
  monitor::Monitor mon(bundle.labels(), thresholds, window, rules, a.keep_text);
  const monitor::ReportInfo info_base{a.model_dir, window_text, 0};

  std::ofstream alerts_file;
  if (!a.alerts.empty()) {
    alerts_file.open(a.alerts, std::ios::app);  // appended: alerts of earlier runs stay
    if (!alerts_file) throw UserError("cannot open --alerts " + a.alerts + ": " + std::strerror(errno));
  }
  std::ostream& alerts_out = a.alerts.empty() ? std::cout : alerts_file;

  struct sigaction sa {};
  sa.sa_handler = request_stop;  // no SA_RESTART: a blocked read returns, and the run ends cleanly
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Pending pending;
  auto score_pending = [&] {
    if (pending.texts.empty()) return;
    const auto preds = predictor.predict(pending.texts, a.batch_size, threads);
    for (std::size_t i = 0; i < preds.size(); ++i)
      for (const auto& alert : mon.add(pending.messages[i], preds[i].probs))
        alerts_out << monitor::alert_json(alert).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    alerts_out.flush();
    pending = Pending{};
  };
  std::size_t bad = 0;
  std::vector<std::size_t> bad_lines;
  auto write_report = [&] {
    if (a.report.empty()) return;
    auto info = info_base;
    info.bad_lines = bad;
    monitor::write_report(mon, info, a.report);
  };
  auto finish = [&] {
    score_pending();
    write_report();
  };
  // While following, the report is brought up to date when the input pauses, at most every few seconds.
  auto last_report = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto refresh_report = [&] {
    if (!a.follow || std::chrono::steady_clock::now() - last_report < std::chrono::seconds(5)) return;
    write_report();
    last_report = std::chrono::steady_clock::now();
  };

  LineReader reader(a.input, a.follow);
  constexpr std::size_t kChunk = 2048;  // as predict: enough texts that sorting by length leaves little padding
  std::string line;
  for (;;) {
    const auto got = reader.next(line);
    if (got == LineReader::Got::End) break;
    if (got == LineReader::Got::Idle) {
      score_pending();
      refresh_report();
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos && !reader.too_long()) continue;  // blank lines
    try {
      if (reader.too_long()) throw monitor::BadLine("longer than " + std::to_string(LineReader::kMaxLine) + " bytes");
      auto m = monitor::parse_message(line);
      pending.texts.push_back(m.text);
      if (!a.keep_text) m.text.clear();
      pending.messages.push_back(std::move(m));
    } catch (const monitor::BadLine& e) {
      const std::string where = "input line " + std::to_string(reader.line_number()) + ": " + e.what();
      if (!a.skip_bad_lines) {
        finish();
        throw UserError(where + " (--skip-bad-lines skips such lines)");
      }
      ++bad;
      if (bad_lines.size() < 20) {
        bad_lines.push_back(reader.line_number());
        spdlog::warn("{} (skipped)", where);
      }
    }
    if (pending.texts.size() == kChunk) score_pending();
  }
  finish();
  std::string listed;
  for (auto n : bad_lines) listed += (listed.empty() ? "" : ", ") + std::to_string(n);
  spdlog::info("monitor: {} messages from {} sources, {} alerts{}{}", mon.messages_total(),
               mon.sources_by_activity().size(), mon.alerts_total(),
               bad ? ", " + std::to_string(bad) + " malformed lines skipped (lines " + listed + (bad > bad_lines.size() ? ", ..." : "") + ")" : "",
               a.report.empty() ? "" : "; report in " + a.report);
  return 0;
}

}  // namespace

void add_monitor_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<MonitorArgs>();
  CLI::App* cmd = app.add_subcommand("monitor", "Follow emotions per source over a stream of JSONL messages");
  cmd->add_option("--model", a->model_dir, "Model directory")->required();
  cmd->add_option("--input", a->input, "JSONL file of {\"time\",\"source\",\"text\"} messages (default: stdin)");
  cmd->add_flag("--follow", a->follow, "Keep reading as the file grows, until Ctrl-C or SIGTERM");
  auto* window = cmd->add_option("--window", a->window, "Summary window per source: a duration (30m, 24h, 7d)");
  auto* last = cmd->add_option("--last", a->last, "Summary window per source: the last N messages (default 100)")
                   ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  window->excludes(last);
  cmd->add_option("--rules", a->rules, "Alert rules (JSON)");
  cmd->add_option("--alerts", a->alerts, "Append alert lines to this file instead of stdout");
  cmd->add_option("--report", a->report, "Write the dashboard (index.html) and summary.json here");
  cmd->add_flag("--keep-text", a->keep_text, "Keep the window's texts (in summary.json); otherwise no text is kept");
  cmd->add_flag("--skip-bad-lines", a->skip_bad_lines, "Skip and count malformed lines instead of stopping");
  cmd->add_option("--batch-size", a->batch_size, "Texts per forward pass")->check(CLI::PositiveNumber);
  add_runtime_options(cmd, a->threads, a->device, a->precision, a->offline);
  cmd->callback([a, &action] {
    action = [a] {
      a->model_dir = fetch::resolve_model(a->model_dir, fetch::cli_fetch_options(a->offline), "--model").string();
      return run_monitor(*a);
    };
  });
}

}  // namespace emotune::cli
