#include "eval/metrics.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace emotune::eval {

namespace {

PRF prf(int64_t tp, int64_t predicted, int64_t support) {
  PRF r;
  r.precision = predicted ? static_cast<double>(tp) / predicted : 0.0;
  r.recall = support ? static_cast<double>(tp) / support : 0.0;
  r.f1 = (r.precision + r.recall) > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
  return r;
}

// [N, L] gold matrix of 0/1.
std::vector<std::vector<char>> gold_matrix(const std::vector<std::vector<int>>& gold, int64_t L) {
  std::vector<std::vector<char>> m(gold.size(), std::vector<char>(static_cast<std::size_t>(L), 0));
  for (std::size_t i = 0; i < gold.size(); ++i)
    for (int g : gold[i]) {
      if (g < 0 || g >= L) throw std::invalid_argument("gold label id out of range");
      m[i][static_cast<std::size_t>(g)] = 1;
    }
  return m;
}

// Area under the ROC curve as the Mann-Whitney statistic with average ranks for ties, which
// equals the trapezoidal area scikit-learn's roc_auc_score computes.
std::optional<double> roc_auc(const std::vector<float>& scores, const std::vector<char>& positive) {
  const std::size_t n = scores.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0;
  int64_t pos = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i + 1;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2.0;  // 1-based ranks i+1..j
    for (std::size_t k = i; k < j; ++k)
      if (positive[order[k]]) {
        rank_sum += avg_rank;
        ++pos;
      }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return std::nullopt;
  return (rank_sum - static_cast<double>(pos) * (pos + 1) / 2.0) / (static_cast<double>(pos) * neg);
}

}  // namespace

Metrics compute_metrics(const torch::Tensor& probs_in, const std::vector<std::vector<int>>& gold,
                        const std::vector<float>& thresholds, const std::vector<int64_t>& first_label) {
  const auto probs = probs_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = probs.size(0), L = probs.size(1);
  if (!torch::isfinite(probs).all().item<bool>())
    throw std::runtime_error("the model gave non-finite scores (NaN or infinity) for " +
                             std::to_string((~torch::isfinite(probs)).any(1).sum().item<int64_t>()) +
                             " text(s): its weights are broken (a diverged run?)");
  if (static_cast<std::size_t>(n) != gold.size() || static_cast<std::size_t>(L) != thresholds.size())
    throw std::invalid_argument("compute_metrics: shapes of probabilities, gold labels and thresholds disagree");
  const auto is_gold = gold_matrix(gold, L);
  const auto p = probs.accessor<float, 2>();
  Metrics m;
  m.n_examples = n;
  m.per_label.resize(static_cast<std::size_t>(L));
  int64_t exact = 0, wrong = 0, top1_first = 0, top1_any = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto& g = is_gold[static_cast<std::size_t>(i)];
    bool all_right = true;
    int64_t best = 0;
    for (int64_t l = 0; l < L; ++l) {
      auto& s = m.per_label[static_cast<std::size_t>(l)];
      const bool pred = p[i][l] >= thresholds[static_cast<std::size_t>(l)];
      const bool y = g[static_cast<std::size_t>(l)];
      s.support += y;
      s.predicted += pred;
      s.true_positives += y && pred;
      if (y != pred) {
        all_right = false;
        ++wrong;
      }
      if (p[i][l] > p[i][best]) best = l;
    }
    exact += all_right;
    const auto& gi = gold[static_cast<std::size_t>(i)];
    const int64_t first = first_label.empty() ? (gi.empty() ? -1 : *std::min_element(gi.begin(), gi.end()))
                                              : first_label[static_cast<std::size_t>(i)];
    top1_first += best == first;
    top1_any += g[static_cast<std::size_t>(best)];
  }
  const double nd = static_cast<double>(std::max<int64_t>(n, 1));
  m.exact_match = exact / nd;
  m.hamming_loss = wrong / (nd * static_cast<double>(L));
  m.top1_accuracy_first_label = top1_first / nd;
  m.top1_accuracy_any_label = top1_any / nd;

  int64_t tp = 0, predicted = 0, support = 0;
  std::vector<float> column(static_cast<std::size_t>(n));
  std::vector<char> positive(static_cast<std::size_t>(n));
  double auc_sum = 0;
  int auc_count = 0;
  for (int64_t l = 0; l < L; ++l) {
    auto& s = m.per_label[static_cast<std::size_t>(l)];
    s.prf = prf(s.true_positives, s.predicted, s.support);
    tp += s.true_positives;
    predicted += s.predicted;
    support += s.support;
    m.macro.precision += s.prf.precision / static_cast<double>(L);
    m.macro.recall += s.prf.recall / static_cast<double>(L);
    m.macro.f1 += s.prf.f1 / static_cast<double>(L);
    for (int64_t i = 0; i < n; ++i) {
      column[static_cast<std::size_t>(i)] = p[i][l];
      positive[static_cast<std::size_t>(i)] = is_gold[static_cast<std::size_t>(i)][static_cast<std::size_t>(l)];
    }
    s.roc_auc = roc_auc(column, positive);
    if (s.roc_auc) {
      auc_sum += *s.roc_auc;
      ++auc_count;
    } else {
      m.roc_auc_excluded.push_back(static_cast<int>(l));
    }
  }
  if (auc_count) m.roc_auc_macro = auc_sum / auc_count;
  m.micro = prf(tp, predicted, support);
  if (support > 0)
    for (const auto& s : m.per_label) {
      const double w = static_cast<double>(s.support) / static_cast<double>(support);
      m.weighted.precision += w * s.prf.precision;
      m.weighted.recall += w * s.prf.recall;
      m.weighted.f1 += w * s.prf.f1;
    }
  m.ece = expected_calibration_error(probs, gold);
  return m;
}

double expected_calibration_error(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold, int bins) {
  const auto table = calibration_bins(probs, gold, bins);
  const auto total = static_cast<double>(probs.numel());
  if (total == 0) return 0;
  double ece = 0;
  for (const auto& b : table)
    ece += static_cast<double>(b.count) / total * std::abs(b.positive_rate - b.mean_probability);
  return ece;
}

std::vector<CalibrationBin> calibration_bins(const torch::Tensor& probs_in, const std::vector<std::vector<int>>& gold,
                                             int bins) {
  const auto probs = probs_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = probs.size(0), L = probs.size(1);
  if (!torch::isfinite(probs).all().item<bool>())
    throw std::runtime_error("the model gave non-finite scores (NaN or infinity) for " +
                             std::to_string((~torch::isfinite(probs)).any(1).sum().item<int64_t>()) +
                             " text(s): its weights are broken (a diverged run?)");
  const auto is_gold = gold_matrix(gold, L);
  const auto p = probs.accessor<float, 2>();
  std::vector<CalibrationBin> out(static_cast<std::size_t>(bins));
  std::vector<double> sum_p(static_cast<std::size_t>(bins)), sum_y(static_cast<std::size_t>(bins));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < L; ++l) {
      const double v = p[i][l];
      const auto b = static_cast<std::size_t>(std::min(bins - 1, static_cast<int>(v * bins)));
      ++out[b].count;
      sum_p[b] += v;
      sum_y[b] += is_gold[static_cast<std::size_t>(i)][static_cast<std::size_t>(l)];
    }
  for (std::size_t b = 0; b < out.size(); ++b)
    if (out[b].count) {
      out[b].mean_probability = sum_p[b] / static_cast<double>(out[b].count);
      out[b].positive_rate = sum_y[b] / static_cast<double>(out[b].count);
    }
  return out;
}

std::vector<float> tune_thresholds(const torch::Tensor& probs_in, const std::vector<std::vector<int>>& gold) {
  const auto probs = probs_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = probs.size(0), L = probs.size(1);
  if (!torch::isfinite(probs).all().item<bool>())
    throw std::runtime_error("the model gave non-finite scores (NaN or infinity) for " +
                             std::to_string((~torch::isfinite(probs)).any(1).sum().item<int64_t>()) +
                             " text(s): its weights are broken (a diverged run?)");
  const auto is_gold = gold_matrix(gold, L);
  const auto p = probs.accessor<float, 2>();
  std::vector<float> best(static_cast<std::size_t>(L), 0.5f);
  for (int64_t l = 0; l < L; ++l) {
    double best_f1 = -1;
    for (int k = 1; k <= 99; ++k) {
      const float t = static_cast<float>(k) / 100.0f;
      int64_t tp = 0, predicted = 0, support = 0;
      for (int64_t i = 0; i < n; ++i) {
        const bool y = is_gold[static_cast<std::size_t>(i)][static_cast<std::size_t>(l)];
        const bool pred = p[i][l] >= t;
        tp += y && pred;
        predicted += pred;
        support += y;
      }
      const double f1 = prf(tp, predicted, support).f1;
      if (f1 >= best_f1) {  // ">=": ties go to the larger threshold
        best_f1 = f1;
        best[static_cast<std::size_t>(l)] = t;
      }
    }
  }
  return best;
}

}  // namespace emotune::eval
