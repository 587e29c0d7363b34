// `emotune predict`: emotions of texts from arguments, a file or stdin, as JSONL, TSV or bars.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cli/io.h"
#include "explain/attribution.h"
#include "infer/prediction_writer.h"
#include "infer/predictor.h"

namespace emotune::cli {

namespace {

struct PredictArgs {
  std::string model_dir;
  std::vector<std::string> texts;
  std::string input;
  std::string format;  // empty: pretty on a terminal, jsonl otherwise
  std::optional<float> threshold;
  std::size_t top_k = 0;  // 0 = no limit
  bool logits = false;
  std::size_t batch_size = 32;
  std::size_t max_length = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string precision;
  bool offline = false;
  bool explain = false;
  ExplainFlags how;
  LongTextFlags long_text;
};

// --explain: the same model again with plain float weights (the predicting one is packed, which
// cannot take gradients), explaining each predicted label.
struct ExplainingModel {
  model::ModelBundle bundle;
  std::optional<explain::Explainer> explainer;
};

std::unique_ptr<ExplainingModel> load_explainer(const PredictArgs& a, torch::Device device) {
  auto m = std::make_unique<ExplainingModel>();
  m->bundle = explain::load_model_to_explain(a.model_dir, device);
  m->explainer.emplace(m->bundle, explain::options_named(a.how.method, a.how.steps, a.how.baseline, a.max_length));
  return m;
}

int predict(PredictArgs a) {
  if (a.format.empty()) a.format = ::isatty(STDOUT_FILENO) && !a.explain ? "pretty" : "jsonl";
  if (a.explain && a.format != "jsonl") throw SettingError("--explain writes JSON lines: use --format jsonl");
  auto [threads, device, bundle] = load_for_inference(a.model_dir, a.threads, a.device, a.precision);
  infer::Predictor predictor(bundle, device, a.max_length, a.long_text.options());
  std::vector<float> thresholds = infer::load_thresholds(a.model_dir, bundle.labels());
  if (a.threshold) std::fill(thresholds.begin(), thresholds.end(), *a.threshold);
  const auto explaining = a.explain ? load_explainer(a, device) : nullptr;
  infer::PredictionWriter::Explain explain;
  if (explaining)
    explain = [&, labels = bundle.labels()](const std::string& text, const std::vector<std::size_t>& ids) {
      auto all = nlohmann::ordered_json::array();
      for (const auto& e : explaining->explainer->explain(text, ids)) {
        auto x = explain::to_json(e, text, labels);
        x.erase("text");
        all.push_back(std::move(x));
      }
      return all;
    };
  infer::PredictionWriter writer(std::cout, infer::parse_prediction_format(a.format), bundle.labels(), thresholds,
                                 a.top_k, a.logits, explain);

  auto run_chunk = [&](const std::vector<std::string>& chunk) {
    const auto preds = predictor.predict(chunk, a.batch_size, threads);
    for (std::size_t i = 0; i < chunk.size(); ++i) writer.write(chunk[i], preds[i]);
    std::cout.flush();
  };
  if (!a.texts.empty()) {
    run_chunk(a.texts);
    return 0;
  }
  // Streams large inputs in chunks: memory stays bounded and output starts early.
  constexpr std::size_t kChunk = 2048;
  std::vector<std::string> chunk;
  for_each_input_line(a.input, [&](const std::string& line) {
    chunk.push_back(line);
    if (chunk.size() == kChunk) {
      run_chunk(chunk);
      chunk.clear();
    }
  });
  if (!chunk.empty()) run_chunk(chunk);
  return 0;
}

}  // namespace

void add_predict_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Recognise the emotions of texts");
  cmd->add_option("--model", a->model_dir, "Model directory")->required();
  cmd->add_option("texts", a->texts, "Texts to classify (default: lines of --input, else of stdin)");
  cmd->add_option("--input", a->input, "File with one text per line");
  cmd->add_option("--format", a->format, "jsonl | tsv | pretty (default: pretty on a terminal, else jsonl)")
      ->check(CLI::IsMember({"jsonl", "tsv", "pretty"}));
  cmd->add_option("--threshold", a->threshold, "One threshold for every label (default: thresholds.json, else 0.5)")
      ->check(FiniteNumber)
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--top-k", a->top_k, "At most K labels per text (0 = no limit)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
  cmd->add_flag("--logits", a->logits, "Add the raw logits (label-id order)");
  cmd->add_option("--batch-size", a->batch_size, "Texts per forward pass")->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a->max_length, "Maximum tokens per text (default: the model's maximum)");
  add_long_text_options(cmd, a->long_text);
  add_runtime_options(cmd, a->threads, a->device, a->precision, a->offline);
  cmd->add_flag("--explain", a->explain, "Add an explanation of each predicted label (see `emotune explain`; JSON lines)");
  add_explain_flags(cmd, a->how, "explain-");
  cmd->callback([a, &action] {
    if (!a->texts.empty() && !a->input.empty()) throw CLI::ValidationError("give TEXT arguments or --input, not both");
    action = [a] {
      a->model_dir = resolve_model_flag(a->model_dir, a->offline, "--model");
      return predict(*a);
    };
  });
}

}  // namespace emotune::cli
