#include "eval/calibrate.h"

#include <algorithm>
#include <limits>

#include "data/batch.h"
#include "eval/metrics.h"
#include "infer/predictor.h"
#include "util/errors.h"

namespace emotune::eval {

namespace {

// The fit's bounds: temperatures in [1e-3, 1e3] (calibration.json's), so a = 1/T in [1e-3, 1e3].
constexpr double kMinScale = 1e-3, kMaxScale = 1e3, kMaxBias = 1e3;

// Binary cross-entropy summed per column of sigmoid(a * z + c): softplus(s) - y * s.
torch::Tensor column_losses(const torch::Tensor& z, const torch::Tensor& y, const torch::Tensor& a,
                            const torch::Tensor& c) {
  const auto s = z * a + c;
  return (torch::softplus(s) - y * s).sum(0);
}

// Newton's method on (a, c) for every column of z [N, K] at once, each column its own problem; a step
// is halved until the column's loss does not rise. Returns {a, c}, each [K].
std::pair<torch::Tensor, torch::Tensor> newton_fit(const torch::Tensor& z, const torch::Tensor& y, bool with_bias) {
  const auto k = z.size(1);
  auto a = torch::ones({k}, torch::kFloat64), c = torch::zeros({k}, torch::kFloat64);
  auto loss = column_losses(z, y, a, c);
  for (int iteration = 0; iteration < 100; ++iteration) {
    const auto p = torch::sigmoid(z * a + c);
    const auto r = p - y, w = p * (1 - p);
    const auto ga = (r * z).sum(0), gc = r.sum(0);
    const auto haa = (w * z * z).sum(0) + 1e-12, hac = (w * z).sum(0), hcc = w.sum(0) + 1e-12;
    torch::Tensor da, dc;
    if (with_bias) {
      const auto det = (haa * hcc - hac * hac).clamp_min(1e-12);
      da = (hcc * ga - hac * gc) / det;
      dc = (haa * gc - hac * ga) / det;
    } else {
      da = ga / haa;
      dc = torch::zeros_like(da);
    }
    auto step = torch::ones({k}, torch::kFloat64);
    auto improved = torch::zeros({k}, torch::kBool);
    auto next_a = a, next_c = c, next_loss = loss;
    for (int halving = 0; halving < 40 && !improved.all().item<bool>(); ++halving) {
      const auto try_a = (a - step * da).clamp(kMinScale, kMaxScale);
      const auto try_c = (c - step * dc).clamp(-kMaxBias, kMaxBias);
      const auto try_loss = column_losses(z, y, try_a, try_c);
      const auto accept = (try_loss <= loss) & ~improved;
      next_a = torch::where(accept, try_a, next_a);
      next_c = torch::where(accept, try_c, next_c);
      next_loss = torch::where(accept, try_loss, next_loss);
      improved = improved | accept;
      step = torch::where(improved, step, step * 0.5);
    }
    const double moved = std::max((next_a - a).abs().max().item<double>(), (next_c - c).abs().max().item<double>());
    a = next_a;
    c = next_c;
    loss = next_loss;
    if (moved < 1e-9) break;
  }
  return {a, c};
}

bool per_label(const std::string& fit) { return fit.size() > 10 && fit.compare(fit.size() - 10, 10, "-per-label") == 0; }

void check_fit(const std::string& fit) {
  const auto& fits = infer::calibration_fits();
  if (std::find(fits.begin(), fits.end(), fit) == fits.end())
    throw SettingError("{fit} must be auto, temperature, temperature-per-label, platt or platt-per-label, not '" + fit + "'");
}

torch::Tensor as_double(const torch::Tensor& t) { return t.to(torch::kCPU, torch::kFloat64).contiguous(); }

}  // namespace

infer::Calibration fit_calibration(const torch::Tensor& logits, const torch::Tensor& targets, const std::string& fit) {
  check_fit(fit);
  const auto z = as_double(logits), y = as_double(targets);
  const auto labels = z.size(1);
  const bool with_bias = fit.rfind("platt", 0) == 0;
  auto [a, c] = per_label(fit) ? newton_fit(z, y, with_bias) : newton_fit(z.reshape({-1, 1}), y.reshape({-1, 1}), with_bias);
  a = a.expand({labels}).contiguous();
  c = c.expand({labels}).contiguous();
  infer::Calibration out;
  out.fit = fit;
  const auto temperature = (1.0 / a).to(torch::kFloat32).contiguous(), bias = c.to(torch::kFloat32).contiguous();
  out.temperature.assign(temperature.data_ptr<float>(), temperature.data_ptr<float>() + labels);
  out.bias.assign(bias.data_ptr<float>(), bias.data_ptr<float>() + labels);
  return out;
}

double calibrated_log_loss(const torch::Tensor& logits, const torch::Tensor& targets, const infer::Calibration& c) {
  const auto s = as_double(infer::calibrated_logits(logits.to(torch::kFloat32), c));
  const auto y = as_double(targets);
  return (torch::softplus(s) - y * s).mean().item<double>();
}

CalibrationChoice choose_calibration(const torch::Tensor& logits_in, const std::vector<std::vector<int>>& gold,
                                     const std::string& fit) {
  if (fit != "auto") check_fit(fit);
  const auto logits = logits_in.to(torch::kCPU, torch::kFloat32).contiguous();
  const auto n = logits.size(0), labels = logits.size(1);
  if (n < 2 || static_cast<std::size_t>(n) != gold.size())
    throw InputError("calibration needs a dev set of at least 2 texts (it has " + std::to_string(gold.size()) + ")");
  std::vector<const std::vector<int>*> rows;
  for (const auto& g : gold) rows.push_back(&g);
  const auto targets = data::multi_hot(rows, labels);

  CalibrationChoice choice;
  const auto even = torch::arange(0, n, 2, torch::kInt64), odd = torch::arange(1, n, 2, torch::kInt64);
  const std::vector<std::string> candidates = fit == "auto" ? infer::calibration_fits() : std::vector<std::string>{fit};
  std::string best;
  double best_loss = std::numeric_limits<double>::infinity();
  for (const auto& candidate : candidates) {
    double total = 0;
    for (const auto& [fit_rows, score_rows] : {std::pair{even, odd}, std::pair{odd, even}}) {
      const auto c = fit_calibration(logits.index_select(0, fit_rows), targets.index_select(0, fit_rows), candidate);
      total += calibrated_log_loss(logits.index_select(0, score_rows), targets.index_select(0, score_rows), c) *
               static_cast<double>(score_rows.size(0));
    }
    const double heldout = total / static_cast<double>(n);
    choice.heldout_log_loss[candidate] = heldout;
    if (heldout < best_loss) {
      best_loss = heldout;
      best = candidate;
    }
  }
  choice.calibration = fit_calibration(logits, targets, best);
  choice.log_loss_before = calibrated_log_loss(logits, targets, {});
  choice.log_loss_after = calibrated_log_loss(logits, targets, choice.calibration);
  const auto probs = torch::sigmoid(infer::calibrated_logits(logits, choice.calibration));
  choice.ece_before = expected_calibration_error(torch::sigmoid(logits), gold);
  choice.ece_after = expected_calibration_error(probs, gold);
  choice.thresholds = tune_thresholds(probs, gold);
  return choice;
}

void save_choice(const std::filesystem::path& model_dir, const std::vector<std::string>& labels,
                 const std::vector<std::string>& model_labels, const CalibrationChoice& choice,
                 const std::string& dev_file, const std::string& taxonomy) {
  const nlohmann::ordered_json about{{"file", dev_file},
                                     {"chosen_by", "cross-fitted dev log-loss (fit on even rows, scored on odd, and back)"},
                                     {"heldout_log_loss", choice.heldout_log_loss},
                                     {"log_loss_before", choice.log_loss_before},
                                     {"log_loss_after", choice.log_loss_after},
                                     {"ece_before", choice.ece_before},
                                     {"ece_after", choice.ece_after}};
  infer::save_calibration(model_dir, labels, choice.calibration, about);
  infer::save_thresholds(model_dir, labels, choice.thresholds, model_labels, {"dev", dev_file, taxonomy});
}

}  // namespace emotune::eval
