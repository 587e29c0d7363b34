#include "train/step.h"

#include <cmath>

namespace emotune::train {

namespace {

// Hugging Face's Trainer decays every tensor except biases and LayerNorm weights.
bool decays(const std::string& name) {
  const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  const bool norm = name.find("LayerNorm") != std::string::npos || name.find("layer_norm") != std::string::npos;
  return !bias && !norm;
}

}  // namespace

MicroBatch make_micro_batch(const data::EncodedDataset& ds, const std::size_t* rows, std::size_t n, int64_t num_labels,
                            std::int32_t pad_id, double share) {
  if (n == 0) return MicroBatch{{}, {}, {}, share};
  std::vector<const std::vector<std::int32_t>*> seqs;
  std::vector<const std::vector<int>*> labels;
  std::vector<int64_t> first;
  for (std::size_t i = 0; i < n; ++i) {
    seqs.push_back(&ds.ids[rows[i]]);
    labels.push_back(&ds.labels[rows[i]]);
    first.push_back(ds.first_label[rows[i]]);
  }
  return MicroBatch{data::pad_batch(seqs, pad_id), data::multi_hot(labels, num_labels), torch::tensor(first, torch::kInt64), share};
}

StepRunner::StepRunner(model::SequenceClassifier model, Loss loss, double weight_decay,
                       double max_grad_norm, torch::Device device, dist::Group* group)
    : model_(std::move(model)), loss_(std::move(loss)), max_grad_norm_(max_grad_norm), device_(device), group_(group) {
  std::vector<bool> decay;
  for (const auto& item : model_->named_parameters()) {
    names_.push_back(item.key());
    params_.push_back(item.value());
    decay.push_back(decays(item.key()));
  }
  AdamWOptions o;
  o.weight_decay = weight_decay;
  opt_ = std::make_unique<AdamW>(params_, decay, o);
  if (group_ && group_->size() > 1) {
    std::optional<std::size_t> table;
    const auto embeddings = model_->input_embeddings()->weight;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].is_same(embeddings)) table = i;
    reducer_ = std::make_unique<dist::GradientReducer>(*group_, params_, table);
  }
}

double StepRunner::step(const std::vector<MicroBatch>& micro, double lr, double& grad_norm) {
  model_->train();
  const auto n = static_cast<double>(micro.size());
  double loss_sum = 0;
  for (const auto& mb : micro) {
    if (!mb.inputs.input_ids.defined()) continue;
    const auto logits =
        model_->forward(mb.inputs.input_ids.to(device_), mb.inputs.attention_mask.to(device_));
    const auto loss = loss_(logits, mb.targets.to(device_), mb.first_label.to(device_));
    (mb.share == 1.0 ? loss / n : loss * (mb.share / n)).backward();
    loss_sum += loss.item<double>() * mb.share;
  }
  if (reducer_) {
    std::vector<torch::Tensor> ids;
    for (const auto& mb : micro)
      if (mb.inputs.input_ids.defined()) ids.push_back(mb.inputs.input_ids.reshape(-1));
    reducer_->reduce(ids.empty() ? torch::Tensor() : torch::cat(ids));
    std::vector<torch::Tensor> total{torch::full({1}, loss_sum, torch::kFloat64)};
    group_->all_reduce_sum(total);
    loss_sum = total[0].item<double>();
  }
  grad_norm = max_grad_norm_ > 0 ? train::grad_norm(params_) : 0.0;
  if (!std::isfinite(loss_sum) || !std::isfinite(grad_norm)) {
    for (auto& p : params_) p.mutable_grad().reset();
    throw NonFiniteError(!std::isfinite(loss_sum) ? "the loss is " + std::to_string(loss_sum / n)
                                                  : "the gradient norm is " + std::to_string(grad_norm));
  }
  opt_->step(lr, max_grad_norm_ > 0 ? clip_coefficient(grad_norm, max_grad_norm_) : 1.0);
  for (auto& p : params_) p.mutable_grad().reset();
  return loss_sum / n;
}

}  // namespace emotune::train
