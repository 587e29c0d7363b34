// `emotune eval`: metrics of a model on a GoEmotions split, thresholds fixed, from a file or tuned
// on dev, and readable reports.
#include <iostream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "eval/evaluate.h"
#include "fetch/resolve.h"

namespace emotune::cli {

namespace fs = std::filesystem;

namespace {

struct EvalArgs {
  std::string model_dir, data, data_dir, split = "dev";
  std::string thresholds = "0.5";
  std::string taxonomy = "original";
  std::string report_dir, dump_probs;
  std::size_t batch_size = 32;  // per stream: with one stream per core, as many rows in flight as one 64-text batch
  std::size_t max_length = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string precision;
  bool offline = false;
  LongTextFlags long_text;
};

int run_eval(const EvalArgs& a) {
  eval::EvaluateOptions o;
  if (!a.data.empty()) {
    o.data_file = a.data;
    o.split = o.data_file.stem().string();
  } else if (!a.data_dir.empty()) {
    o.data_file = fs::path(a.data_dir) / (a.split + ".tsv");
    o.split = a.split;
    o.dev_file = fs::path(a.data_dir) / "dev.tsv";
  } else {
    throw SettingError("give --data FILE or --data-dir DIR (with --split dev|test)");
  }
  o.thresholds = a.thresholds;
  o.taxonomy = a.taxonomy;
  o.batch_size = a.batch_size;
  o.max_length = a.max_length;
  o.dump_probs = a.dump_probs;
  o.report_dir = a.report_dir;
  o.long_text = a.long_text.options();
  auto [streams, device, bundle] = load_for_inference(a.model_dir, a.threads, a.device, a.precision);
  o.streams = streams;
  eval::print_headline(eval::evaluate(bundle, a.model_dir, o, device), std::cout);
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a model on a GoEmotions split and write reports");
  cmd->add_option("--model", a->model_dir, "Model directory")->required();
  auto* data = cmd->add_option("--data", a->data, "A GoEmotions TSV file");
  cmd->add_option("--data-dir", a->data_dir, "GoEmotions directory (dev.tsv, test.tsv), or goemotions (the cached download)");
  cmd->add_option("--split", a->split, "dev | test (with --data-dir)")->check(CLI::IsMember({"dev", "test"}))->excludes(data);
  cmd->add_option("--thresholds", a->thresholds, "0.5 | T | tuned (on dev, saved to thresholds.json) | FILE");
  cmd->add_option("--taxonomy", a->taxonomy, "original | ekman | sentiment")
      ->check(CLI::IsMember({"original", "ekman", "sentiment"}));
  cmd->add_option("--report", a->report_dir, "Write report.json, report.md and report.html here");
  cmd->add_option("--dump-probs", a->dump_probs, "Write {gold, probs} per example as JSONL");
  cmd->add_option("--batch-size", a->batch_size, "Texts per forward pass")->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a->max_length, "Maximum tokens per text (default: the model's maximum)");
  add_long_text_options(cmd, a->long_text);
  add_runtime_options(cmd, a->threads, a->device, a->precision, a->offline);
  cmd->callback([a, &action] {
    action = [a] {
      a->model_dir = resolve_model_flag(a->model_dir, a->offline);
      a->data_dir = fetch::resolve_data_dir(a->data_dir, fetch::cli_fetch_options(a->offline)).string();
      return run_eval(*a);
    };
  });
}

}  // namespace emotune::cli
