// `emotune monitor`: emotions of a stream of messages over time, per source, with alert rules and a
// dashboard (see monitor/monitor.h, monitor/rules.h, monitor/dashboard.h).
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "infer/predictor.h"
#include "infer/thresholds.h"
#include "monitor/monitor.h"
#include "monitor/rules.h"
#include "monitor/stream.h"
#include "util/stop_signals.h"

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
  std::size_t max_sources = monitor::Monitor::kDefaultMaxSources;
  int threads = 0;
  std::string device = "cpu";
  std::string precision;
  bool offline = false;
  LongTextFlags long_text;
};

int run_monitor(const MonitorArgs& a) {
  monitor::Window window;
  monitor::StreamOptions o;
  if (!a.window.empty()) {
    const auto d = monitor::parse_duration(a.window);
    if (!d) throw SettingError("--window must be a duration such as 30m, 24h or 7d (got '" + a.window + "')");
    window.span_ms = *d;
    o.report.window = a.window;
  } else {
    window.last = a.last ? a.last : 100;
    o.report.window = "last " + std::to_string(window.last) + " messages";
  }
  o.report.model = a.model_dir;
  o.follow = a.follow;
  o.keep_text = a.keep_text;
  o.skip_bad_lines = a.skip_bad_lines;
  o.batch_size = a.batch_size;
  o.report_dir = a.report;
  auto [streams, device, bundle] = load_for_inference(a.model_dir, a.threads, a.device, a.precision);
  o.streams = streams;
  infer::Predictor predictor(bundle, device, 0, a.long_text.options());
  std::vector<monitor::Rule> rules;
  if (!a.rules.empty()) {
    try {
      rules = monitor::load_rules(a.rules, bundle.labels());
    } catch (const std::runtime_error& e) {
      throw SettingError(std::string("--rules ") + e.what());
    }
  }
  monitor::Monitor mon(bundle.labels(), infer::load_thresholds(a.model_dir, bundle.labels()), window, rules, a.keep_text,
                       a.max_sources);
  std::ofstream alerts_file;
  if (!a.alerts.empty()) {
    alerts_file.open(a.alerts, std::ios::app);  // appended: alerts of earlier runs stay
    if (!alerts_file) throw InputError("cannot open --alerts " + a.alerts + ": " + std::strerror(errno));
  }

  const util::StopSignals signals;  // Ctrl-C or SIGTERM ends the input; what was read is scored and reported
  monitor::LineReader reader(a.input, a.follow);
  const auto summary = monitor::run_stream(reader, predictor, mon, a.alerts.empty() ? std::cout : alerts_file, o);
  std::string listed;
  for (auto n : summary.first_bad_lines) listed += (listed.empty() ? "" : ", ") + std::to_string(n);
  const bool more = summary.bad_lines > summary.first_bad_lines.size();
  spdlog::info("monitor: {} messages from {} sources{}, {} alerts{}{}", mon.messages_total(),
               mon.sources_by_activity().size(),
               mon.sources_dropped() ? " (" + std::to_string(mon.sources_dropped()) + " less recent ones dropped: --max-sources)" : "",
               mon.alerts_total(),
               summary.bad_lines ? ", " + std::to_string(summary.bad_lines) + " malformed lines skipped (lines " + listed +
                                       (more ? ", ..." : "") + ")"
                                 : "",
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
  cmd->add_option("--max-sources", a->max_sources,
                  "Sources kept at once (default 10000): the least recently active one makes room for a new one")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}));
  add_long_text_options(cmd, a->long_text);
  add_runtime_options(cmd, a->threads, a->device, a->precision, a->offline);
  cmd->callback([a, &action] {
    action = [a] {
      a->model_dir = resolve_model_flag(a->model_dir, a->offline, "--model");
      return run_monitor(*a);
    };
  });
}

}  // namespace emotune::cli
