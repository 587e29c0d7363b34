#include "train/optimizer.h"

#include <cmath>
#include <stdexcept>

namespace emotune::train {

AdamW::AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, AdamWOptions options)
    : params_(std::move(params)), decay_(std::move(decay)), o_(options) {
  if (params_.size() != decay_.size()) throw std::invalid_argument("AdamW: one decay flag per parameter");
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p));
    v_.push_back(torch::zeros_like(p));
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++t_;
  const double bias1 = 1 - std::pow(o_.beta1, static_cast<double>(t_));
  const double bias2 = 1 - std::pow(o_.beta2, static_cast<double>(t_));
  const double step_size = lr / bias1;
  const double bias2_sqrt = std::sqrt(bias2);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (decay_[i] && o_.weight_decay != 0) p.mul_(1 - lr * o_.weight_decay);
    m_[i].mul_(o_.beta1).add_(g, 1 - o_.beta1);
    v_[i].mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
    const auto denom = (v_[i].sqrt() / bias2_sqrt).add_(o_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2));
  if (norms.empty()) return 0.0;
  const auto total = torch::stack(norms).norm(2);
  // Like PyTorch: always multiply by the clamped coefficient (1.0 when within the bound).
  const auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (const auto& p : params)
    if (p.grad().defined()) p.grad().mul_(coef);
  return total.item<double>();
}

double LinearSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  const double remaining = static_cast<double>(total_steps - step) / static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  return base_lr * std::max(0.0, remaining);
}

}  // namespace emotune::train
