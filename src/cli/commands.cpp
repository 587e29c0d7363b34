#include "cli/commands.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/errors.h"
#include "runtime/runtime.h"

namespace emotune::cli {

namespace {

// Logs go to stderr: stdout carries results (JSONL) that other tools read.
void log_to_stderr() {
  if (spdlog::get("emotune")) return;  // a process that runs several commands (the Python package)
  spdlog::set_default_logger(spdlog::stderr_color_mt("emotune"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
}

}  // namespace

int execute(const std::vector<std::string>& args, const Hooks& hooks) {
  CLI::App app{"emotune: emotion recognition with fine-tuned transformer encoders"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return std::string("emotune ") + EMOTUNE_VERSION + " (" + runtime::build_summary() + ")"; });
  Action action;
  add_tokenize_command(app, action);
  add_init_command(app, action);
  add_predict_command(app, action);
  add_train_command(app, action, hooks);
  add_bench_command(app, action);
  add_eval_command(app, action);
  add_calibrate_command(app, action);
  add_serve_command(app, action);
  add_fetch_command(app, action);
  add_explain_command(app, action);
  add_monitor_command(app, action);
  log_to_stderr();
  try {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them last first
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  }
  return action();
}

int run(int argc, char** argv) {
  try {
    return execute(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const CLI::ParseError& e) {
    std::cerr << "emotune: error: " << first_line(e.what()) << " (see --help)\n";
    return 2;
  } catch (...) {
    const FailureReport report = report_failure(std::current_exception());
    std::cerr << report.line << "\n";
    return report.exit_code;
  }
}

}  // namespace emotune::cli
