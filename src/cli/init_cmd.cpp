// `emotune init`: a randomly initialised (or base-initialised) classifier directory, so that
// tests and experiments can have models of any size.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "model/checkpoint.h"
#include "data/labels.h"

namespace emotune::cli {

namespace {

struct InitArgs {
  std::string config;
  std::string base;
  std::string tokenizer;
  std::string labels = "goemotions";
  std::string out;
  std::uint64_t seed = 42;
  bool overwrite = false;
  bool offline = false;
};

int init(const InitArgs& a) {
  model::NewClassifier spec{a.base, a.config, a.tokenizer, data::resolve_labels(a.labels), a.seed};
  const int64_t params = model::write_new_classifier(spec, a.out, a.overwrite);
  spdlog::info("wrote {} ({} labels, {} parameters, seed {})", a.out, spec.labels.size(), params, a.seed);
  return 0;
}

}  // namespace

void add_init_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<InitArgs>();
  CLI::App* cmd = app.add_subcommand("init", "Write a freshly initialised classifier model directory");
  auto* config = cmd->add_option("--config", a->config, "config.json, or a directory holding it and the tokenizer");
  auto* base = cmd->add_option("--base", a->base, "Start the encoder from this base checkpoint (directory or hub name) instead");
  config->excludes(base);
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer directory (default: the config's directory)")->excludes(base);
  cmd->add_option("--labels", a->labels, "goemotions | ekman | sentiment | FILE (one label per line)");
  cmd->add_option("--out", a->out, "Output model directory")->required();
  cmd->add_option("--seed", a->seed, "Random seed for initialisation");
  cmd->add_flag("--overwrite", a->overwrite, "Replace an existing output directory");
  add_offline_flag(cmd, a->offline);
  cmd->callback([a, &action] {
    if (a->config.empty() && a->base.empty()) throw CLI::RequiredError("--config or --base");
    action = [a] {
      a->base = resolve_model_flag(a->base, a->offline, "--base");
      return init(*a);
    };
  });
}

}  // namespace emotune::cli
