#include "eval/metrics.h"

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

}  // namespace

Metrics compute_metrics(const torch::Tensor& probs_in, const std::vector<std::vector<int>>& gold,
                        const std::vector<float>& thresholds) {
  const auto probs = probs_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = probs.size(0), L = probs.size(1);
  if (static_cast<std::size_t>(n) != gold.size() || static_cast<std::size_t>(L) != thresholds.size())
    throw std::invalid_argument("compute_metrics: shapes of probabilities, gold labels and thresholds disagree");
  Metrics m;
  m.n_examples = n;
  m.per_label.resize(static_cast<std::size_t>(L));
  const auto p = probs.accessor<float, 2>();
  int64_t exact = 0, wrong = 0;
  std::vector<char> is_gold(static_cast<std::size_t>(L));
  for (int64_t i = 0; i < n; ++i) {
    std::fill(is_gold.begin(), is_gold.end(), 0);
    for (int g : gold[static_cast<std::size_t>(i)]) is_gold[static_cast<std::size_t>(g)] = 1;
    bool all_right = true;
    for (int64_t l = 0; l < L; ++l) {
      auto& s = m.per_label[static_cast<std::size_t>(l)];
      const bool pred = p[i][l] >= thresholds[static_cast<std::size_t>(l)];
      const bool g = is_gold[static_cast<std::size_t>(l)];
      s.support += g;
      s.predicted += pred;
      s.true_positives += g && pred;
      if (g != pred) {
        all_right = false;
        ++wrong;
      }
    }
    exact += all_right;
  }
  m.exact_match = n ? static_cast<double>(exact) / n : 0.0;
  m.hamming_loss = n ? static_cast<double>(wrong) / (n * L) : 0.0;
  int64_t tp = 0, predicted = 0, support = 0;
  for (auto& s : m.per_label) {
    s.prf = prf(s.true_positives, s.predicted, s.support);
    tp += s.true_positives;
    predicted += s.predicted;
    support += s.support;
    m.macro.precision += s.prf.precision / L;
    m.macro.recall += s.prf.recall / L;
    m.macro.f1 += s.prf.f1 / L;
  }
  m.micro = prf(tp, predicted, support);
  for (const auto& s : m.per_label) {
    if (support == 0) break;
    const double w = static_cast<double>(s.support) / support;
    m.weighted.precision += w * s.prf.precision;
    m.weighted.recall += w * s.prf.recall;
    m.weighted.f1 += w * s.prf.f1;
  }
  return m;
}

}  // namespace emotune::eval
