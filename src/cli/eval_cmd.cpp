// `emotune eval`: metrics of a model on a GoEmotions split, thresholds fixed, from a file or tuned
// on dev, and readable reports.
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "fetch/resolve.h"
#include "cli/commands.h"
#include "data/batch.h"
#include "eval/report.h"
#include "infer/predictor.h"
#include "runtime/runtime.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

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
};

// Probabilities in the taxonomy's label space, with the loss of the model's objective.
struct Scored {
  torch::Tensor probs;
  double loss = 0;
  data::EncodedDataset data;
};

class Evaluator {
 public:
  Evaluator(const EvalArgs& a, model::ModelBundle& bundle, torch::Device device, std::size_t streams)
      : a_(a), bundle_(bundle), device_(device), streams_(streams), taxonomy_(data::parse_taxonomy(a.taxonomy)) {
    labels_ = data::taxonomy_labels(taxonomy_);
    // A published model may list the same labels in its own order: its columns are read by name.
    std::vector<std::string> model_labels = bundle.labels();
    const std::vector<std::string>* candidates[] = {&labels_, &data::goemotions_labels()};
    for (const auto* known : candidates) {
      if (model_labels == *known || !std::is_permutation(model_labels.begin(), model_labels.end(), known->begin(), known->end()))
        continue;
      std::vector<int64_t> order;
      for (const auto& name : *known)
        order.push_back(std::find(model_labels.begin(), model_labels.end(), name) - model_labels.begin());
      column_order_ = torch::tensor(order, torch::kInt64);
      model_labels = *known;
      break;
    }
    if (model_labels == labels_) {
      mapped_ = false;
    } else if (model_labels == data::goemotions_labels()) {
      mapped_ = true;  // a 28-label model seen through a grouping: group probability = max of members
    } else {
      throw UserError("the model's " + std::to_string(bundle.labels().size()) + " labels are neither GoEmotions' 28 nor the " +
                      a.taxonomy + " groups");
    }
    single_label_ = bundle.config().single_label;
    const auto positions = static_cast<std::size_t>(bundle.config().max_tokens());
    max_length_ = a.max_length ? a.max_length : positions;
    if (max_length_ > positions || max_length_ < 2)
      throw UserError("--max-length " + std::to_string(max_length_) + " is outside 2.." + std::to_string(positions) +
                      " (the model's positions)");
  }

  const std::vector<std::string>& labels() const { return labels_; }

  Scored score(const fs::path& file) {
    const auto ds = data::read_goemotions_tsv(file, taxonomy_, false);
    Scored s;
    s.data = data::encode_dataset(ds, *bundle_.tokenizer, max_length_);
    std::vector<const std::vector<std::int32_t>*> seqs;
    for (const auto& ids : s.data.ids) seqs.push_back(&ids);
    auto logits = infer::compute_logits(bundle_.model, seqs, a_.batch_size, bundle_.tokenizer->pad_id(), device_, streams_);
    if (column_order_.defined()) logits = logits.index_select(1, column_order_);
    if (single_label_) {
      s.probs = torch::softmax(logits, 1);
      s.loss = torch::nn::functional::cross_entropy(logits, torch::tensor(s.data.first_label, torch::kInt64)).item<double>();
    } else {
      s.probs = torch::sigmoid(logits);
    }
    if (mapped_) s.probs = infer::group_probabilities(s.probs, taxonomy_);
    if (!single_label_) {
      std::vector<const std::vector<int>*> gold;
      for (const auto& g : s.data.labels) gold.push_back(&g);
      const auto targets = data::multi_hot(gold, static_cast<int64_t>(labels_.size()));
      s.loss = mapped_ ? torch::nn::functional::binary_cross_entropy(s.probs.clamp(1e-7, 1 - 1e-7), targets).item<double>()
                       : torch::nn::functional::binary_cross_entropy_with_logits(logits, targets).item<double>();
    }
    return s;
  }

 private:
  const EvalArgs& a_;
  model::ModelBundle& bundle_;
  torch::Device device_;
  std::size_t streams_;
  data::Taxonomy taxonomy_;
  std::vector<std::string> labels_;
  bool mapped_ = false, single_label_ = false;
  torch::Tensor column_order_;  // the model's column of each label, when its order differs
  std::size_t max_length_ = 512;
};

bool is_number(const std::string& s) {
  try {
    std::size_t pos = 0;
    const double v = std::stod(s, &pos);
    return pos == s.size() && v >= 0 && v <= 1;
  } catch (const std::exception&) {
    return false;
  }
}

int evaluate(const EvalArgs& a) {
  const int threads = runtime::configure_threads(a.threads);
  const torch::Device device = runtime::resolve_device(a.device);
  fs::path data_file;
  std::string split;
  if (!a.data.empty()) {
    data_file = a.data;
    split = data_file.stem().string();
  } else if (!a.data_dir.empty()) {
    data_file = fs::path(a.data_dir) / (a.split + ".tsv");
    split = a.split;
  } else {
    throw UserError("give --data FILE or --data-dir DIR (with --split dev|test)");
  }
  model::ModelBundle bundle = model::load_model_dir(a.model_dir, model::inference_options(a.precision, device));
  Evaluator evaluator(a, bundle, device, static_cast<std::size_t>(threads));
  const auto& labels = evaluator.labels();

  eval::EvalResult r;
  r.split = split;
  r.data_path = data_file;
  r.model_dir = a.model_dir;
  r.taxonomy = a.taxonomy;
  r.labels = labels;
  if (a.thresholds == "tuned") {
    if (a.data_dir.empty()) throw UserError("--thresholds tuned needs --data-dir (thresholds are tuned on its dev.tsv)");
    const fs::path dev = fs::path(a.data_dir) / "dev.tsv";
    if (!fs::exists(dev)) throw UserError("--thresholds tuned: no dev.tsv in " + a.data_dir);
    if (fs::exists(data_file) && fs::equivalent(dev, data_file))
      throw UserError("--thresholds tuned: thresholds are never tuned on the split being reported; evaluate --split test");
    const auto dev_scores = evaluator.score(dev);
    r.thresholds = eval::tune_thresholds(dev_scores.probs, dev_scores.data.labels);
    r.threshold_source = "dev";
    r.threshold_origin = dev.string();
    const auto& own = bundle.labels();
    if (labels == own || std::is_permutation(labels.begin(), labels.end(), own.begin(), own.end())) {
      nlohmann::ordered_json values = nlohmann::ordered_json::object();  // by name: the model's order may differ
      for (std::size_t i = 0; i < labels.size(); ++i) values[labels[i]] = r.thresholds[i];
      const nlohmann::ordered_json j{{"source", "dev"}, {"file", dev.string()}, {"taxonomy", a.taxonomy},
                                     {"labels", labels}, {"values", labels == own ? nlohmann::ordered_json(r.thresholds) : values}};
      util::write_text_atomically(fs::path(a.model_dir) / "thresholds.json", j.dump(2) + "\n");
      spdlog::info("tuned thresholds saved to {}", (fs::path(a.model_dir) / "thresholds.json").string());
    } else {
      spdlog::warn("thresholds tuned for the {} groups are not saved: the model's labels differ", a.taxonomy);
    }
  } else if (is_number(a.thresholds)) {
    r.thresholds.assign(labels.size(), std::stof(a.thresholds));
    r.threshold_source = "fixed";
    r.threshold_origin = a.thresholds;
  } else if (fs::exists(a.thresholds)) {
    r.thresholds = infer::load_thresholds_file(a.thresholds, labels);
    r.threshold_source = "file";
    r.threshold_origin = a.thresholds;
  } else {
    throw UserError("--thresholds must be a number in [0, 1], 'tuned', or an existing file: " + a.thresholds);
  }

  const auto scored = evaluator.score(data_file);
  r.loss = scored.loss;
  r.probs = scored.probs;
  r.gold = scored.data.labels;
  r.metrics = eval::compute_metrics(r.probs, r.gold, r.thresholds, scored.data.first_label);

  if (!a.dump_probs.empty()) {
    util::write_file_atomically(a.dump_probs, [&](std::ostream& out) {
      const auto p = r.probs.contiguous();
      const auto pa = p.accessor<float, 2>();
      for (std::size_t i = 0; i < r.gold.size(); ++i) {
        nlohmann::json row{{"gold", r.gold[i]}, {"probs", nlohmann::json::array()}};
        for (int64_t l = 0; l < p.size(1); ++l) row["probs"].push_back(pa[static_cast<int64_t>(i)][l]);
        out << row.dump() << "\n";
      }
    });
  }
  if (!a.report_dir.empty()) {
    r.model_sha256 = util::sha256_file(fs::path(a.model_dir) / "model.safetensors");
    r.data_sha256 = util::sha256_file(data_file);
    eval::write_reports(r, a.report_dir);
    spdlog::info("reports written to {} (report.json, report.md, report.html)", a.report_dir);
  }
  eval::print_headline(r, std::cout);
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
  add_runtime_options(cmd, a->threads, a->device, a->precision, a->offline);
  cmd->callback([a, &action] {
    action = [a] {
      const auto fo = fetch::cli_fetch_options(a->offline);
      a->model_dir = fetch::resolve_model(a->model_dir, fo, "--model").string();
      a->data_dir = fetch::resolve_data_dir(a->data_dir, fo).string();
      return evaluate(*a);
    };
  });
}

}  // namespace emotune::cli
