#include <gtest/gtest.h>

#include "eval/metrics.h"

using namespace emotune::eval;

namespace {
torch::Tensor probs(std::vector<std::vector<float>> rows) {
  auto t = torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < rows[i].size(); ++j) t[i][j] = rows[i][j];
  return t;
}
}  // namespace

// Three labels, four texts, worked by hand:
//   gold:      {0}, {0,1}, {1}, {}      predicted (>= 0.5): {0}, {0}, {}, {2}
//   label 0: tp 2, predicted 2, support 2 -> P 1, R 1, F1 1
//   label 1: tp 0, predicted 0, support 2 -> P 0, R 0, F1 0
//   label 2: tp 0, predicted 1, support 0 -> P 0, R 0, F1 0
TEST(Metrics, HandComputedCase) {
  const auto p = probs({{0.9f, 0.2f, 0.1f}, {0.8f, 0.4f, 0.3f}, {0.1f, 0.45f, 0.2f}, {0.3f, 0.1f, 0.7f}});
  const std::vector<std::vector<int>> gold = {{0}, {0, 1}, {1}, {}};
  const auto m = compute_metrics(p, gold, {0.5f, 0.5f, 0.5f});
  EXPECT_DOUBLE_EQ(m.per_label[0].prf.f1, 1.0);
  EXPECT_DOUBLE_EQ(m.per_label[1].prf.f1, 0.0);
  EXPECT_EQ(m.per_label[2].predicted, 1);
  EXPECT_DOUBLE_EQ(m.macro.f1, 1.0 / 3.0);
  // micro: tp 2, predicted 3, support 4 -> P 2/3, R 1/2, F1 4/7
  EXPECT_DOUBLE_EQ(m.micro.precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.micro.recall, 0.5);
  EXPECT_NEAR(m.micro.f1, 4.0 / 7.0, 1e-12);
  // weighted by support (2, 2, 0): (1*2 + 0*2) / 4
  EXPECT_DOUBLE_EQ(m.weighted.f1, 0.5);
  // exact match: only text 0; Hamming: wrong decisions (text1 label1, text2 label1, text3 label2) = 3 / 12
  EXPECT_DOUBLE_EQ(m.exact_match, 0.25);
  EXPECT_DOUBLE_EQ(m.hamming_loss, 0.25);
  // label 2 has no positives: no ROC-AUC, listed as excluded
  EXPECT_FALSE(m.per_label[2].roc_auc.has_value());
  EXPECT_EQ(m.roc_auc_excluded, std::vector<int>{2});
  // label 0: positives {0.9, 0.8} above negatives {0.1, 0.3} -> 1; label 1: pos {0.4, 0.45}, neg {0.2, 0.1} -> 1
  EXPECT_DOUBLE_EQ(*m.roc_auc_macro, 1.0);
  // top-1: argmax per text = 0, 0, 1, 2; first gold (smallest id) = 0, 0, 1, none -> 3/4; any gold -> 3/4
  EXPECT_DOUBLE_EQ(m.top1_accuracy_first_label, 0.75);
  EXPECT_DOUBLE_EQ(m.top1_accuracy_any_label, 0.75);
}

TEST(Metrics, EmptyPredictionsGiveZeroNotNaN) {
  const auto p = probs({{0.1f, 0.2f}, {0.3f, 0.1f}});
  const auto m = compute_metrics(p, {{0}, {1}}, {0.5f, 0.5f});
  EXPECT_EQ(m.micro.precision, 0.0);
  EXPECT_EQ(m.micro.f1, 0.0);
  EXPECT_EQ(m.macro.f1, 0.0);
  EXPECT_EQ(m.exact_match, 0.0);
}

TEST(Metrics, RocAucCountsTiesAsHalf) {
  // positives {0.5, 0.7}, negatives {0.5, 0.1}: pairs (0.5,0.5)=0.5, (0.5,0.1)=1, (0.7,*)=1+1 -> 3.5/4
  const auto p = probs({{0.5f}, {0.7f}, {0.5f}, {0.1f}});
  const auto m = compute_metrics(p, {{0}, {0}, {}, {}}, {0.5f});
  EXPECT_DOUBLE_EQ(*m.per_label[0].roc_auc, 0.875);
}

TEST(Metrics, CalibrationErrorOfAPerfectlyCalibratedBin) {
  // Four probabilities of 0.25 (one bin), one of them positive: observed 0.25 = predicted 0.25.
  const auto p = probs({{0.25f}, {0.25f}, {0.25f}, {0.25f}});
  EXPECT_NEAR(compute_metrics(p, {{0}, {}, {}, {}}, {0.5f}).ece, 0.0, 1e-7);
  // All 0.9 and all negative: ECE = 0.9.
  const auto q = probs({{0.9f}, {0.9f}});
  EXPECT_NEAR(compute_metrics(q, {{}, {}}, {0.5f}).ece, 0.9, 1e-6);
}

TEST(Metrics, TunedThresholdsMaximiseF1WithTiesToTheLarger) {
  // Positives at 0.6 and 0.7, negatives at 0.2 and 0.3: any threshold in (0.3, 0.6] gives F1 = 1;
  // the largest grid point there is 0.60.
  const auto p = probs({{0.6f}, {0.7f}, {0.2f}, {0.3f}});
  const auto t = tune_thresholds(p, {{0}, {0}, {}, {}});
  EXPECT_FLOAT_EQ(t[0], 0.6f);
}
