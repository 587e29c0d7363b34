#include "train/objective.h"

#include <torch/nn/functional/loss.h>

#include <stdexcept>

namespace emotune::train {

namespace F = torch::nn::functional;

namespace {

torch::Tensor asymmetric_loss(const torch::Tensor& logits, const torch::Tensor& targets, const AsymmetricLossOptions& o) {
  constexpr double eps = 1e-8;  // keeps log() finite where p or 1 - p_m underflows
  const auto p = torch::sigmoid(logits);
  const auto not_p = o.clip > 0 ? (1 - p + o.clip).clamp_max(1.0) : 1 - p;  // 1 - p_m
  const auto log_likelihood = targets * torch::log(p.clamp_min(eps)) + (1 - targets) * torch::log(not_p.clamp_min(eps));
  const auto p_true = p * targets + not_p * (1 - targets);
  const auto gamma = o.gamma_pos * targets + o.gamma_neg * (1 - targets);
  return -(torch::pow(1 - p_true, gamma) * log_likelihood).mean();
}

}  // namespace

Objective parse_objective(const std::string& s) {
  if (s == "multi-label") return Objective::multi_label;
  if (s == "single-label") return Objective::single_label;
  throw std::invalid_argument("{objective} must be multi-label or single-label, not '" + s + "'");
}

LossKind parse_loss(const std::string& s) {
  if (s == "bce") return LossKind::bce;
  if (s == "weighted-bce") return LossKind::weighted_bce;
  if (s == "focal") return LossKind::focal;
  if (s == "asl") return LossKind::asl;
  throw std::invalid_argument("{loss} must be bce, weighted-bce, focal or asl, not '" + s + "'");
}

const char* loss_name(LossKind kind) {
  switch (kind) {
    case LossKind::bce:
      return "bce";
    case LossKind::weighted_bce:
      return "weighted-bce";
    case LossKind::focal:
      return "focal";
    case LossKind::asl:
      return "asl";
  }
  throw std::logic_error("unknown loss");
}

torch::Tensor Loss::operator()(const torch::Tensor& logits, const torch::Tensor& targets,
                               const torch::Tensor& first_label) const {
  if (objective == Objective::single_label) return F::cross_entropy(logits, first_label);
  switch (kind) {
    case LossKind::bce:
      return F::binary_cross_entropy_with_logits(logits, targets);
    case LossKind::weighted_bce:
      return F::binary_cross_entropy_with_logits(
          logits, targets, F::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(pos_weight.to(logits.device())));
    case LossKind::focal: {
      // Focal loss (Lin et al.): BCE scaled by (1 - p_t)^gamma, p_t the probability of the true class.
      const auto bce = F::binary_cross_entropy_with_logits(
          logits, targets, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
      const auto p = torch::sigmoid(logits);
      const auto p_t = p * targets + (1 - p) * (1 - targets);
      return (torch::pow(1 - p_t, focal_gamma) * bce).mean();
    }
    case LossKind::asl:
      return asymmetric_loss(logits, targets, asl);
  }
  throw std::logic_error("unknown loss");
}

torch::Tensor positive_class_weights(const std::vector<std::vector<int>>& labels, int64_t num_labels) {
  std::vector<double> positives(static_cast<std::size_t>(num_labels), 0.0);
  for (const auto& ls : labels)
    for (int l : ls) positives[static_cast<std::size_t>(l)] += 1;
  auto w = torch::empty({num_labels}, torch::kFloat32);
  const double n = static_cast<double>(labels.size());
  for (int64_t l = 0; l < num_labels; ++l) {
    const double pos = std::max(1.0, positives[static_cast<std::size_t>(l)]);
    w[l] = static_cast<float>((n - pos) / pos);
  }
  return w;
}

}  // namespace emotune::train
