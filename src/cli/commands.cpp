#include "cli/commands.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/errors.h"
#include "runtime/runtime.h"

namespace emotune::cli {

int run(int argc, char** argv) {
  CLI::App app{"emotune: emotion recognition with fine-tuned transformer encoders"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return std::string("emotune ") + EMOTUNE_VERSION + " (" + runtime::build_summary() + ")"; });
  Action action;
  add_tokenize_command(app, action);
  add_init_command(app, action);
  add_predict_command(app, action);
  add_train_command(app, action);
  add_bench_command(app, action);
  add_eval_command(app, action);
  add_calibrate_command(app, action);
  add_serve_command(app, action);
  add_fetch_command(app, action);
  add_explain_command(app, action);
  add_monitor_command(app, action);

  // Logs go to stderr: stdout carries results (JSONL) that other tools read.
  spdlog::set_default_logger(spdlog::stderr_color_mt("emotune"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "emotune: error: " << first_line(e.what()) << " (see --help)\n";
    return 2;
  }
  try {
    return action();
  } catch (...) {
    const FailureReport report = report_failure(std::current_exception());
    std::cerr << report.line << "\n";
    return report.exit_code;
  }
}

}  // namespace emotune::cli
