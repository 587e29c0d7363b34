// Multi-label metrics of predicted probabilities against gold label sets, the per-label
// threshold tuning that feeds thresholds.json, and the single-label and calibration figures.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
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
  std::optional<double> roc_auc;  // absent when the split lacks positives or negatives of the label
};

struct Metrics {
  int64_t n_examples = 0;
  double exact_match = 0;   // subset accuracy
  double hamming_loss = 0;  // wrong label decisions / (examples x labels)
  PRF micro, macro, weighted;
  std::vector<LabelStats> per_label;
  std::optional<double> roc_auc_macro;  // mean over labels with both classes
  std::vector<int> roc_auc_excluded;    // labels left out of that mean
  double ece = 0;                       // expected calibration error, 15 equal-width bins, all probabilities
  double top1_accuracy_first_label = 0; // argmax equals the first gold label
  double top1_accuracy_any_label = 0;   // argmax is one of the gold labels
};

// probs [N, L]; a label is predicted when its probability is >= its threshold. F1 of a label with
// no predicted and no gold positives counts as 0 in the macro mean (scikit-learn's zero_division=0).
// first_label may be empty (then the top-1 figures use each example's smallest gold id).
Metrics compute_metrics(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold,
                        const std::vector<float>& thresholds, const std::vector<int64_t>& first_label = {});

// Per label, the threshold on the grid 0.01..0.99 that maximises that label's F1 (ties: the larger).
std::vector<float> tune_thresholds(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold);

// Expected calibration error over every probability: the count-weighted mean over equal-width bins
// of |positive rate - mean probability| (Metrics::ece, without the other metrics' work).
double expected_calibration_error(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold, int bins = 15);

// Reliability diagram data: per equal-width bin, count, mean probability and positive rate.
struct CalibrationBin {
  int64_t count = 0;
  double mean_probability = 0, positive_rate = 0;
};
std::vector<CalibrationBin> calibration_bins(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold,
                                             int bins = 15);

}  // namespace emotune::eval
