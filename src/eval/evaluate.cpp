#include "eval/evaluate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "data/batch.h"
#include "data/labels.h"
#include "eval/metrics.h"
#include "infer/predictor.h"
#include "infer/thresholds.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

namespace emotune::eval {

namespace fs = std::filesystem;

namespace {

// Probabilities in the taxonomy's label space, with the loss of the model's objective.
struct Scored {
  torch::Tensor logits;            // uncalibrated, in the labels' order (the model's, before any grouping)
  torch::Tensor probs;             // as served: calibrated when the model has calibration.json
  torch::Tensor uncalibrated;      // the plain sigmoid's; undefined without a calibration
  double loss = 0;
  data::EncodedDataset data;
};

class Evaluator {
 public:
  Evaluator(const EvaluateOptions& o, model::ModelBundle& bundle, torch::Device device)
      : o_(o), bundle_(bundle), device_(device), taxonomy_(data::parse_taxonomy(o.taxonomy)) {
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
      throw InputError("the model's " + std::to_string(bundle.labels().size()) + " labels are neither GoEmotions' 28 nor the " +
                       o.taxonomy + " groups");
    }
    single_label_ = bundle.config().single_label;
    calibration_ = infer::load_model_calibration(bundle);
    max_length_ = bundle.config().choose_max_length(o.max_length);
  }

  const std::vector<std::string>& labels() const { return labels_; }
  const std::string& calibration_fit() const { return calibration_.fit; }

  Scored score(const fs::path& file) {
    const auto ds = data::read_goemotions_tsv(file, taxonomy_, false);
    Scored s;
    const bool whole = o_.long_text.mode == infer::LongText::window;  // long texts in windows, else cut
    s.data = data::encode_dataset(ds, *bundle_.tokenizer, whole ? std::numeric_limits<std::size_t>::max() : max_length_);
    std::vector<const std::vector<std::int32_t>*> seqs;
    for (const auto& ids : s.data.ids) seqs.push_back(&ids);
    const std::vector<std::size_t> window_lengths(
        seqs.size(), whole ? infer::window_length_for(bundle_, o_.max_length) : std::numeric_limits<std::size_t>::max());
    auto logits = infer::windowed_logits(bundle_.model, seqs, window_lengths, o_.long_text, o_.batch_size,
                                         bundle_.tokenizer->pad_id(), device_, o_.streams)
                      .logits;
    auto served = infer::calibrated_logits(logits, calibration_);  // in the model's order, as its calibration is
    if (column_order_.defined()) {
      logits = logits.index_select(1, column_order_);
      served = served.index_select(1, column_order_);
    }
    s.logits = logits;
    if (single_label_) {
      s.probs = torch::softmax(logits, 1);
      s.loss = torch::nn::functional::cross_entropy(logits, torch::tensor(s.data.first_label, torch::kInt64)).item<double>();
    } else {
      s.probs = torch::sigmoid(served);
      if (calibration_.applies()) s.uncalibrated = torch::sigmoid(logits);
    }
    if (mapped_) {
      s.probs = infer::group_probabilities(s.probs, taxonomy_);
      if (s.uncalibrated.defined()) s.uncalibrated = infer::group_probabilities(s.uncalibrated, taxonomy_);
    }
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
  const EvaluateOptions& o_;
  model::ModelBundle& bundle_;
  torch::Device device_;
  data::Taxonomy taxonomy_;
  std::vector<std::string> labels_;
  bool mapped_ = false, single_label_ = false;
  torch::Tensor column_order_;  // the model's column of each label, when its order differs
  infer::Calibration calibration_;
  std::size_t max_length_ = 512;
};

// A fixed threshold: a number in [0, 1], written in full.
bool is_threshold_number(const std::string& s) {
  try {
    std::size_t pos = 0;
    const double v = std::stod(s, &pos);
    return pos == s.size() && v >= 0 && v <= 1;
  } catch (const std::exception&) {
    return false;
  }
}

// Thresholds tuned on dev, saved as the model's when they are for its labels.
void tune_on_dev(Evaluator& evaluator, model::ModelBundle& bundle, const fs::path& model_dir,
                 const EvaluateOptions& o, EvalResult& r) {
  if (o.dev_file.empty()) throw SettingError("{thresholds} tuned needs {data_dir} (thresholds are tuned on its dev.tsv)");
  if (!fs::exists(o.dev_file)) throw InputError("{thresholds} tuned: no " + o.dev_file.string());
  if (fs::exists(o.data_file) && fs::equivalent(o.dev_file, o.data_file))
    throw SettingError("{thresholds} tuned: thresholds are never tuned on the split being reported; evaluate the test split");
  const auto dev_scores = evaluator.score(o.dev_file);
  r.thresholds = tune_thresholds(dev_scores.probs, dev_scores.data.labels);
  r.threshold_source = "dev";
  r.threshold_origin = o.dev_file.string();
  const auto& own = bundle.labels();
  if (!std::is_permutation(r.labels.begin(), r.labels.end(), own.begin(), own.end())) {
    spdlog::warn("thresholds tuned for the {} groups are not saved: the model's labels differ", o.taxonomy);
    return;
  }
  infer::save_thresholds(model_dir, r.labels, r.thresholds, own, {"dev", o.dev_file.string(), o.taxonomy});
  spdlog::info("tuned thresholds saved to {}", (model_dir / "thresholds.json").string());
}

void choose_thresholds(Evaluator& evaluator, model::ModelBundle& bundle, const fs::path& model_dir,
                       const EvaluateOptions& o, EvalResult& r) {
  if (o.thresholds == "tuned") {
    tune_on_dev(evaluator, bundle, model_dir, o, r);
  } else if (is_threshold_number(o.thresholds)) {
    r.thresholds.assign(r.labels.size(), std::stof(o.thresholds));
    r.threshold_source = "fixed";
    r.threshold_origin = o.thresholds;
  } else if (fs::exists(o.thresholds)) {
    r.thresholds = infer::load_thresholds_file(o.thresholds, r.labels);
    r.threshold_source = "file";
    r.threshold_origin = o.thresholds;
  } else {
    throw SettingError("{thresholds} must be a number in [0, 1], 'tuned', or an existing file: " + o.thresholds);
  }
}

void write_probabilities(const EvalResult& r, const fs::path& path) {
  util::write_file_atomically(path, [&](std::ostream& out) {
    const auto p = r.probs.contiguous();
    const auto pa = p.accessor<float, 2>();
    for (std::size_t i = 0; i < r.gold.size(); ++i) {
      nlohmann::json row{{"gold", r.gold[i]}, {"probs", nlohmann::json::array()}};
      for (int64_t l = 0; l < p.size(1); ++l) row["probs"].push_back(pa[static_cast<int64_t>(i)][l]);
      out << row.dump() << "\n";
    }
  });
}

}  // namespace

EvalResult evaluate(model::ModelBundle& bundle, const fs::path& model_dir, const EvaluateOptions& o,
                    torch::Device device) {
  Evaluator evaluator(o, bundle, device);
  EvalResult r;
  r.split = o.split;
  r.data_path = o.data_file;
  r.model_dir = model_dir;
  r.taxonomy = o.taxonomy;
  r.labels = evaluator.labels();
  choose_thresholds(evaluator, bundle, model_dir, o, r);

  const auto scored = evaluator.score(o.data_file);
  r.loss = scored.loss;
  r.probs = scored.probs;
  r.gold = scored.data.labels;
  r.metrics = compute_metrics(r.probs, r.gold, r.thresholds, scored.data.first_label);
  r.calibration = evaluator.calibration_fit();
  r.uncalibrated_probs = scored.uncalibrated;
  r.ece_uncalibrated =
      scored.uncalibrated.defined() ? expected_calibration_error(scored.uncalibrated, r.gold) : r.metrics.ece;
  if (!o.dump_probs.empty()) write_probabilities(r, o.dump_probs);
  if (!o.report_dir.empty()) {
    r.model_sha256 = util::sha256_file(model_dir / "model.safetensors");
    r.data_sha256 = util::sha256_file(o.data_file);
    write_reports(r, o.report_dir);
    spdlog::info("reports written to {} (report.json, report.md, report.html)", o.report_dir.string());
  }
  return r;
}

CalibrationChoice calibrate(model::ModelBundle& bundle, const fs::path& model_dir, const CalibrateOptions& o,
                            torch::Device device) {
  if (bundle.config().single_label)
    throw InputError("calibrate fits per-label sigmoid scores, and this model is single-label (softmax)");
  if (!fs::exists(o.dev_file)) throw InputError("calibrate: no " + o.dev_file.string());
  // The model's own labels: a permutation of GoEmotions' 28 or of a taxonomy's groups.
  std::string taxonomy;
  for (const char* name : {"original", "ekman", "sentiment"}) {
    const auto& known = data::taxonomy_labels(data::parse_taxonomy(name));
    const auto& own = bundle.labels();
    if (std::is_permutation(own.begin(), own.end(), known.begin(), known.end())) taxonomy = name;
  }
  if (taxonomy.empty())
    throw InputError("calibrate: the model's " + std::to_string(bundle.labels().size()) +
                     " labels are neither GoEmotions' 28 nor the ekman or sentiment groups");
  EvaluateOptions eo;
  eo.taxonomy = taxonomy;
  eo.batch_size = o.batch_size;
  eo.max_length = o.max_length;
  eo.streams = o.streams;
  Evaluator evaluator(eo, bundle, device);
  const auto dev = evaluator.score(o.dev_file);
  auto choice = choose_calibration(dev.logits, dev.data.labels, o.fit);
  save_choice(model_dir, evaluator.labels(), bundle.labels(), choice, o.dev_file.string(), taxonomy);
  return choice;
}

}  // namespace emotune::eval
