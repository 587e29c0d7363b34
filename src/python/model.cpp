#include "python/model.h"

#include "explain/attribution.h"
#include "fetch/resolve.h"
#include "infer/thresholds.h"

namespace emotune::python {

Model::Model(const ModelOptions& o) : options_(o) {
  directory_ = fetch::resolve_model(o.path, fetch::cli_fetch_options(o.offline), "{path}").string();
  loaded_ = std::make_unique<infer::InferenceModel>(infer::load_for_inference(directory_, o.threads, o.device, o.precision));
  const infer::LongTextOptions long_text{infer::parse_long_text(o.long_text), o.window_stride,
                                         infer::parse_window_combine(o.window_combine)};
  predictor_.emplace(loaded_->bundle, loaded_->device, o.max_length, long_text);
  thresholds_ = infer::load_thresholds(directory_, loaded_->bundle.labels());
}

Model::~Model() = default;

const std::vector<std::string>& Model::labels() const { return loaded_->bundle.labels(); }

Scores Model::scores(const std::vector<std::string>& texts) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto predictions = predictor_->predict(texts, options_.batch_size, loaded_->streams);
  Scores s;
  s.rows = texts.size();
  s.labels = labels().size();
  s.probs.reserve(s.rows * s.labels);
  s.logits.reserve(s.rows * s.labels);
  for (const auto& p : predictions) {
    s.probs.insert(s.probs.end(), p.probs.begin(), p.probs.end());
    s.logits.insert(s.logits.end(), p.logits.begin(), p.logits.end());
    s.truncated += p.truncated;
  }
  return s;
}

std::string Model::explain(const std::string& text, const std::vector<std::size_t>& label_ids, std::size_t top_k,
                           const std::string& method, std::size_t steps, const std::string& baseline) {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const std::size_t id : label_ids)
    if (id >= labels().size()) throw std::invalid_argument("{label} id " + std::to_string(id) + " is not a label of this model");
  const auto how = explain::options_named(method, steps, baseline, options_.max_length);
  if (!explaining_)
    explaining_ = std::make_unique<model::ModelBundle>(explain::load_model_to_explain(directory_, loaded_->device));
  const explain::Explainer explainer(*explaining_, how);
  const auto chosen = explain::labels_to_explain(explainer.scores(text), thresholds_, top_k, label_ids);
  auto all = nlohmann::ordered_json::array();
  for (const auto& e : explainer.explain(text, chosen)) all.push_back(explain::to_json(e, text, labels()));
  return all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace emotune::python
