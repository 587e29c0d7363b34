// `emotune explain`: which tokens and words made the model give each label its logit (see
// explain/attribution.h), as one JSON object per text and label.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cli/io.h"
#include "explain/attribution.h"
#include "infer/thresholds.h"
#include "runtime/runtime.h"

namespace emotune::cli {

void add_explain_flags(CLI::App* cmd, ExplainFlags& flags, const std::string& prefix) {
  cmd->add_option("--" + prefix + "method", flags.method, "integrated-gradients | gradient-x-input | occlusion")
      ->check(CLI::IsMember({"integrated-gradients", "gradient-x-input", "occlusion"}));
  cmd->add_option("--" + prefix + "steps", flags.steps, "Integrated gradients' interpolation steps")
      ->check(CLI::Range(std::size_t{1}, explain::kMaxSteps));
  cmd->add_option("--" + prefix + "baseline", flags.baseline, "What the text's tokens become in the baseline: pad | mask")
      ->check(CLI::IsMember({"pad", "mask"}));
}

namespace {

struct ExplainArgs {
  std::string model_dir;
  std::vector<std::string> texts;
  std::string input;
  std::vector<std::string> labels;
  std::size_t top_k = 0;
  ExplainFlags how;
  std::size_t max_length = 0;
  std::string format;  // empty: pretty on a terminal, jsonl otherwise
  int threads = 0;
  std::string device = "cpu";
  bool offline = false;
};

std::vector<std::size_t> label_ids(const std::vector<std::string>& names, const std::vector<std::string>& labels) {
  std::vector<std::size_t> ids;
  for (const auto& n : names) {
    const auto it = std::find(labels.begin(), labels.end(), n);
    if (it == labels.end()) throw SettingError("--label '" + n + "' is not one of the model's labels");
    ids.push_back(static_cast<std::size_t>(it - labels.begin()));
  }
  return ids;
}

// The words that pushed hardest toward the label, then the ones that pushed against it.
void print_pretty(const explain::Explanation& e, const std::string& text, const std::vector<std::string>& labels) {
  std::printf("%s\n  %s  score %.3f  logit %.3f (baseline %.3f)%s\n", text.c_str(), labels[e.label].c_str(), e.score,
              e.logit, e.baseline_logit, e.truncated ? "  (truncated)" : "");
  auto words = e.words;
  std::stable_sort(words.begin(), words.end(), [](const auto& a, const auto& b) { return a.attribution > b.attribution; });
  double top = 1e-12;
  for (const auto& w : words) top = std::max(top, std::abs(w.attribution));
  for (const auto& w : words) {
    const int bar = static_cast<int>(std::lround(std::abs(w.attribution) / top * 20));
    std::string bars;
    for (int b = 0; b < bar; ++b) bars += w.attribution >= 0 ? "\u2588" : "\u2591";
    std::printf("    %-16s %+8.4f %s\n", w.word.c_str(), w.attribution, bars.c_str());
  }
  if (e.delta) std::printf("  completeness delta %.2g\n", *e.delta);
  std::fflush(stdout);
}

int explain_texts(ExplainArgs a) {
  if (a.format.empty()) a.format = ::isatty(STDOUT_FILENO) ? "pretty" : "jsonl";
  runtime::configure_threads(a.threads);
  const torch::Device device = runtime::resolve_device(a.device);
  model::ModelBundle bundle = explain::load_model_to_explain(a.model_dir, device);
  const explain::Explainer explainer(bundle, explain::options_named(a.how.method, a.how.steps, a.how.baseline, a.max_length));
  const auto named = label_ids(a.labels, bundle.labels());
  const auto thresholds = infer::load_thresholds(a.model_dir, bundle.labels());

  auto run = [&](const std::string& text) {
    const auto chosen = explain::labels_to_explain(explainer.scores(text), thresholds, a.top_k, named);
    for (const auto& e : explainer.explain(text, chosen)) {
      if (a.format == "pretty")
        print_pretty(e, text, bundle.labels());
      else
        std::cout << explain::to_json(e, text, bundle.labels()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << '\n' << std::flush;
    }
  };
  if (!a.texts.empty())
    for (const auto& t : a.texts) run(t);
  else
    for_each_input_line(a.input, run);
  return 0;
}

}  // namespace

void add_explain_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<ExplainArgs>();
  CLI::App* cmd = app.add_subcommand("explain", "Show which words made the model give its labels");
  cmd->add_option("--model", a->model_dir, "Model directory")->required();
  cmd->add_option("texts", a->texts, "Texts to explain (default: lines of --input, else of stdin)");
  cmd->add_option("--input", a->input, "File with one text per line");
  auto* label = cmd->add_option("--label", a->labels, "Explain this label (repeatable; default: the predicted labels)")
                    ->allow_extra_args(false);
  auto* top_k = cmd->add_option("--top-k", a->top_k, "Explain the K highest-scoring labels")
                    ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  label->excludes(top_k);
  add_explain_flags(cmd, a->how, "");
  cmd->add_option("--max-length", a->max_length, "Maximum tokens per text (default: the model's maximum)");
  cmd->add_option("--format", a->format, "jsonl | pretty (default: pretty on a terminal, else jsonl)")
      ->check(CLI::IsMember({"jsonl", "pretty"}));
  cmd->add_option("--threads", a->threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", a->device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  add_offline_flag(cmd, a->offline);
  cmd->callback([a, &action] {
    if (!a->texts.empty() && !a->input.empty()) throw CLI::ValidationError("give TEXT arguments or --input, not both");
    action = [a] {
      a->model_dir = resolve_model_flag(a->model_dir, a->offline, "--model");
      return explain_texts(*a);
    };
  });
}

}  // namespace emotune::cli
