// `emotune calibrate`: probabilities people can read as such, fitted on dev (eval/calibrate.h) and
// saved in the model directory (calibration.json, with thresholds.json re-tuned on them).
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "eval/evaluate.h"
#include "fetch/resolve.h"

namespace emotune::cli {

namespace fs = std::filesystem;

namespace {

struct CalibrateArgs {
  std::string model_dir, data_dir, dev_file;
  std::string fit = "auto";
  std::size_t batch_size = 32;
  std::size_t max_length = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string precision;
  bool offline = false;
};

void print_choice(const eval::CalibrationChoice& c, const fs::path& model_dir, std::ostream& out) {
  char line[160];
  out << "held-out dev log-loss (fitted on one half of dev, scored on the other):\n";
  for (const auto& [fit, loss] : c.heldout_log_loss.items()) {
    std::snprintf(line, sizeof line, "  %-22s %.5f%s\n", fit.c_str(), loss.get<double>(),
                  fit == c.calibration.fit ? "  <- chosen" : "");
    out << line;
  }
  std::snprintf(line, sizeof line, "dev log-loss %.5f -> %.5f, ECE %.4f -> %.4f\n", c.log_loss_before, c.log_loss_after,
                c.ece_before, c.ece_after);
  out << line << "wrote " << (model_dir / "calibration.json").string() << " and "
      << (model_dir / "thresholds.json").string() << " (re-tuned on the calibrated dev scores)\n";
}

int calibrate(const CalibrateArgs& a) {
  eval::CalibrateOptions o;
  if (!a.dev_file.empty()) o.dev_file = a.dev_file;
  else if (!a.data_dir.empty()) o.dev_file = fs::path(a.data_dir) / "dev.tsv";
  else throw SettingError("give --data-dir DIR (its dev.tsv) or --dev-file FILE");
  o.fit = a.fit;
  o.batch_size = a.batch_size;
  o.max_length = a.max_length;
  auto [streams, device, bundle] = load_for_inference(a.model_dir, a.threads, a.device, a.precision);
  o.streams = streams;
  print_choice(eval::calibrate(bundle, a.model_dir, o, device), a.model_dir, std::cout);
  return 0;
}

}  // namespace

void add_calibrate_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<CalibrateArgs>();
  CLI::App* cmd = app.add_subcommand("calibrate", "Fit calibrated probabilities on dev and save them in the model directory");
  cmd->add_option("--model", a->model_dir, "Model directory (calibration.json and thresholds.json are written there)")
      ->required();
  auto* data_dir = cmd->add_option("--data-dir", a->data_dir, "GoEmotions directory (its dev.tsv), or goemotions (the cached download)");
  cmd->add_option("--dev-file", a->dev_file, "A GoEmotions TSV file to fit on instead")->excludes(data_dir);
  cmd->add_option("--fit", a->fit,
                  "auto (chosen by held-out dev log-loss) | temperature | temperature-per-label | platt | platt-per-label")
      ->check(CLI::IsMember({"auto", "temperature", "temperature-per-label", "platt", "platt-per-label"}));
  cmd->add_option("--batch-size", a->batch_size, "Texts per forward pass")->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a->max_length, "Maximum tokens per text (default: the model's maximum)");
  add_runtime_options(cmd, a->threads, a->device, a->precision, a->offline);
  cmd->callback([a, &action] {
    action = [a] {
      a->model_dir = resolve_model_flag(a->model_dir, a->offline);
      if (!a->data_dir.empty())
        a->data_dir = fetch::resolve_data_dir(a->data_dir, fetch::cli_fetch_options(a->offline)).string();
      return calibrate(*a);
    };
  });
}

}  // namespace emotune::cli
