// Training objectives: sigmoid + binary cross-entropy for overlapping emotions (optionally
// class-weighted or focal), or softmax cross-entropy against each text's first label.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace emotune::train {

enum class Objective { multi_label, single_label };
enum class LossKind { bce, weighted_bce, focal };

Objective parse_objective(const std::string& s);  // "multi-label" | "single-label"
LossKind parse_loss(const std::string& s);        // "bce" | "weighted-bce" | "focal"

struct Loss {
  Objective objective = Objective::multi_label;
  LossKind kind = LossKind::bce;
  double focal_gamma = 2.0;
  torch::Tensor pos_weight;  // [num_labels], for weighted-bce

  // logits [B, L]; targets [B, L] multi-hot; first_label [B] int64. Mean over batch (x labels).
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& targets,
                           const torch::Tensor& first_label) const;
};

// pos_weight[l] = negatives / positives of label l in the training labels (at least 1 positive),
// so that each label's positives weigh as much as its negatives.
torch::Tensor positive_class_weights(const std::vector<std::vector<int>>& labels, int64_t num_labels);

}  // namespace emotune::train
