// Multi-label metrics of predicted probabilities against gold label sets.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace emotune::eval {

struct PRF {
  double precision = 0, recall = 0, f1 = 0;
};

struct LabelStats {
  PRF prf;
  int64_t support = 0;    // gold positives
  int64_t predicted = 0;  // predicted positives
  int64_t true_positives = 0;
};

struct Metrics {
  int64_t n_examples = 0;
  double exact_match = 0;   // subset accuracy
  double hamming_loss = 0;  // wrong label decisions / (examples x labels)
  PRF micro, macro, weighted;
  std::vector<LabelStats> per_label;
};

// probs [N, L]; a label is predicted when its probability is >= its threshold. F1 of a label with
// no predicted and no gold positives counts as 0 in the macro mean (scikit-learn's zero_division=0).
Metrics compute_metrics(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold,
                        const std::vector<float>& thresholds);

}  // namespace emotune::eval
