// The emotune subcommands: each registers its flags on the CLI11 app and returns the action
// to run when the user picked it. run() turns exceptions from an action into one error line and an
// exit code (cli/errors.h); execute() leaves them to its caller (the Python package raises them).
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/trainer.h"
#include "util/errors.h"

namespace emotune::cli {

using Action = std::function<int()>;

// What a caller that runs commands in its own process hears while they run.
struct Hooks {
  std::function<void(const train::StepProgress&)> on_train_step;  // train: after every optimizer step
};

using emotune::InputError;
using emotune::SettingError;

void add_tokenize_command(CLI::App& app, Action& action);
void add_init_command(CLI::App& app, Action& action);
void add_predict_command(CLI::App& app, Action& action);
void add_train_command(CLI::App& app, Action& action, const Hooks& hooks);
void add_bench_command(CLI::App& app, Action& action);
void add_eval_command(CLI::App& app, Action& action);
void add_calibrate_command(CLI::App& app, Action& action);
void add_serve_command(CLI::App& app, Action& action);
void add_fetch_command(CLI::App& app, Action& action);
void add_explain_command(CLI::App& app, Action& action);
void add_monitor_command(CLI::App& app, Action& action);

// How explanations are computed, for `explain` (--method, --steps, --baseline) and `predict --explain`
// (--explain-method, --explain-steps, --explain-baseline).
struct ExplainFlags {
  std::string method = "integrated-gradients";
  std::size_t steps = 32;
  std::string baseline = "pad";
};
void add_explain_flags(CLI::App* cmd, ExplainFlags& flags, const std::string& prefix);

// Refuses nan, inf and overflowing numbers, which CLI11's range checks let through (NaN compares false).
inline const CLI::Validator FiniteNumber(
    [](std::string& v) -> std::string {
      char* end = nullptr;
      errno = 0;
      const double x = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0') return "";  // not a number: the option's own parsing reports it
      return std::isfinite(x) && errno != ERANGE ? "" : "must be a finite number (got " + v + ")";
    },
    "FINITE");

// The numbers of the encoder's layers for the inference commands (predict, eval, serve, bench):
// --precision f32|bf16|int8 (fp32 is f32), and --quantize int8, its older name for int8.
inline void add_precision_options(CLI::App* cmd, std::string& precision) {
  auto* p = cmd->add_option("--precision", precision,
                            "f32 | bf16 (bfloat16 products: oneDNN on CPUs with AVX512_BF16 or AMX, or a GPU) | int8 (dynamic int8, CPU)")
                ->check(CLI::IsMember({"f32", "fp32", "bf16", "int8"}));
  cmd->add_option("--quantize", precision, "int8: dynamic int8 encoder layers (CPU; faster, slightly less exact)")
      ->check(CLI::IsMember({"int8", "none"}))
      ->excludes(p);
}

// --offline: names resolve through the caches only (HF_HUB_OFFLINE=1 does the same).
inline void add_offline_flag(CLI::App* cmd, bool& offline) {
  cmd->add_flag("--offline", offline, "Never download: model and data names resolve through the caches only");
}

// Where and how the model runs, for the commands that load one for inference (predict, eval, serve):
// --threads, --device, --precision/--quantize, --offline.
inline void add_runtime_options(CLI::App* cmd, int& threads, std::string& device, std::string& precision,
                                bool& offline) {
  cmd->add_option("--threads", threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  add_precision_options(cmd, precision);
  add_offline_flag(cmd, offline);
}

// Runs the emotune command line; returns the process exit code.
int run(int argc, char** argv);

// Parses `args` (the command line without the program's name) and runs the command they name;
// returns its exit code (train: 130 when stopped by a signal, after saving). A command line CLI11
// refuses throws CLI::ParseError; a failing command throws as the library does (util/errors.h).
// --help and --version print and return 0.
int execute(const std::vector<std::string>& args, const Hooks& hooks = {});

}  // namespace emotune::cli
