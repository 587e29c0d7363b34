// `emotune init`: a randomly initialised (or base-initialised) classifier directory, so that
// tests and experiments can have models of any size.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "model/checkpoint.h"
#include "data/labels.h"
#include "util/atomic_file.h"

namespace emotune::cli {

namespace fs = std::filesystem;

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
  const std::vector<std::string> labels = data::resolve_labels(a.labels);
  std::optional<model::ModelBundle> base;
  model::SequenceClassifier net;
  text::TokenizerPtr tokenizer;
  if (!a.base.empty()) {
    // A base checkpoint: the encoder comes from it, the head is initialised for `labels`.
    model::LoadOptions opts;
    opts.labels = labels;
    opts.seed = a.seed;
    base.emplace(model::load_model_dir(a.base, opts));
    if (base->labels() != labels)
      throw InputError(a.base + " is already a classifier with other labels; init --base takes a base checkpoint");
    net = base->model;
    tokenizer = base->tokenizer;
  } else {
    const fs::path cfg_path = fs::is_directory(a.config) ? fs::path(a.config) / "config.json" : fs::path(a.config);
    model::ModelConfig config = model::ModelConfig::load(cfg_path);
    config.labels = labels;
    // Marked in config.json, so every command that later loads it (or what is trained from it) says so.
    config.raw["emotune_random_init"] = true;
    const fs::path tok_dir = a.tokenizer.empty() ? cfg_path.parent_path() : fs::path(a.tokenizer);
    tokenizer = text::load_tokenizer(tok_dir.empty() ? fs::path(".") : tok_dir);
    if (static_cast<int64_t>(tokenizer->vocab_size()) > config.vocab_size)
      throw InputError("the tokenizer in " + tok_dir.string() + " has " + std::to_string(tokenizer->vocab_size()) +
                      " tokens but vocab_size is " + std::to_string(config.vocab_size));
    net = model::init_classifier(config, a.seed);
  }
  util::write_directory_atomically(a.out, a.overwrite,
                                   [&](const fs::path& dir) { model::save_model_files(dir, *net, *tokenizer); });
  int64_t params = 0;
  for (const auto& p : net->parameters()) params += p.numel();
  spdlog::info("wrote {} ({} labels, {} parameters, seed {})", a.out, labels.size(), params, a.seed);
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
