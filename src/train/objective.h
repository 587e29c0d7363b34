// Training objectives: sigmoid + binary cross-entropy for overlapping emotions (optionally
// class-weighted, focal or asymmetric), or softmax cross-entropy against each text's first label.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace emotune::train {

enum class Objective { multi_label, single_label };
enum class LossKind { bce, weighted_bce, focal, asl };

Objective parse_objective(const std::string& s);  // "multi-label" | "single-label"
LossKind parse_loss(const std::string& s);        // "bce" | "weighted-bce" | "focal" | "asl"
const char* loss_name(LossKind kind);             // the inverse of parse_loss

// The asymmetric loss (Ridnik et al., ICCV 2021) for one label with probability p = sigmoid(logit):
//   positive: -(1 - p)^gamma_pos log(p)
//   negative: -p_m^gamma_neg log(1 - p_m),  p_m = max(p - clip, 0)
// so easy negatives (the many absent emotions of a text) are down-weighted hard and the very easy
// ones (p < clip) are dropped. The paper's defaults; the mean over batch x labels, as BCE's.
struct AsymmetricLossOptions {
  double gamma_neg = 4.0;
  double gamma_pos = 1.0;
  double clip = 0.05;
};

struct Loss {
  Objective objective = Objective::multi_label;
  LossKind kind = LossKind::bce;
  double focal_gamma = 2.0;
  AsymmetricLossOptions asl;
  torch::Tensor pos_weight;  // [num_labels], for weighted-bce

  // logits [B, L]; targets [B, L] multi-hot; first_label [B] int64. Mean over batch (x labels).
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets,
                           const torch::Tensor& first_label) const;
};

// pos_weight[l] = negatives / positives of label l in the training labels (at least 1 positive),
// so that each label's positives weigh as much as its negatives.
torch::Tensor positive_class_weights(const std::vector<std::vector<int>>& labels, int64_t num_labels);

}  // namespace emotune::train
