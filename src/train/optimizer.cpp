#include "train/optimizer.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace emotune::train {

AdamW::AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, AdamWOptions options)
    : params_(std::move(params)), decay_(std::move(decay)), o_(options) {
  if (params_.size() != decay_.size()) throw std::invalid_argument("AdamW: one decay flag per parameter");
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p));
    v_.push_back(torch::zeros_like(p));
  }
  on_accelerator_ = !params_.empty() && !params_.front().is_cpu();
  if (on_accelerator_)
    for (const auto& p : params_) step_counts_.push_back(torch::zeros({}, p.options()));
}

namespace {

struct AdamWScalars {
  float decay, scale, b1, one_b1, b2, one_b2, bias2_sqrt, eps, step_size;
};

// The steps of torch.optim.AdamW (single-tensor form) for each element, in one pass. Compiled for
// AVX-512, AVX2 and the baseline; the loader picks the widest the CPU runs (without vectors the loop
// is bound by its square roots and divisions).
__attribute__((target_clones("avx512f", "avx2", "default"))) void adamw_span(float* __restrict p, const float* __restrict g,
                                                                   float* __restrict m, float* __restrict v,
                                                                   int64_t n, AdamWScalars s) {
  for (int64_t j = 0; j < n; ++j) {
    const float gj = g[j] * s.scale;
    const float mj = m[j] * s.b1 + s.one_b1 * gj;
    const float vj = v[j] * s.b2 + s.one_b2 * gj * gj;
    m[j] = mj;
    v[j] = vj;
    const float denom = __builtin_sqrtf(vj) / s.bias2_sqrt + s.eps;
    p[j] = p[j] * s.decay - s.step_size * (mj / denom);
  }
}

// Sum of squares with 32 float lanes per block of at most 4096 elements, blocks added in double:
// vectorises into several independent accumulators (one would wait on its own additions), and the
// float partial sums stay short enough to be exact to ~1e-7.
__attribute__((target_clones("avx512f", "avx2", "default"))) double sum_of_squares(const float* __restrict d, int64_t n) {
  constexpr int kLanes = 32;
  double total = 0;
  for (int64_t start = 0; start < n; start += 4096) {
    const int64_t end = std::min<int64_t>(n, start + 4096);
    float lane[kLanes] = {};
    int64_t j = start;
    for (; j + kLanes <= end; j += kLanes)
      for (int k = 0; k < kLanes; ++k) lane[k] += d[j + k] * d[j + k];
    for (; j < end; ++j) lane[0] += d[j] * d[j];
    for (float x : lane) total += x;
  }
  return total;
}

}  // namespace

void AdamW::step(double lr, double grad_scale) {
  torch::NoGradGuard no_grad;
  ++t_;
  if (on_accelerator_) return step_on_accelerator(lr, grad_scale);
  // Scalars rounded to float once, as PyTorch's float kernels use them.
  const float bias2_sqrt = static_cast<float>(std::sqrt(1 - std::pow(o_.beta2, static_cast<double>(t_))));
  const float step_size = static_cast<float>(lr / (1 - std::pow(o_.beta1, static_cast<double>(t_))));
  const float b1 = static_cast<float>(o_.beta1), b2 = static_cast<float>(o_.beta2);
  const float one_b1 = static_cast<float>(1 - o_.beta1), one_b2 = static_cast<float>(1 - o_.beta2);
  const float eps = static_cast<float>(o_.eps), scale = static_cast<float>(grad_scale);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& g = params_[i].grad();
    if (!g.defined()) continue;
    TORCH_CHECK(params_[i].is_contiguous() && g.is_contiguous() && params_[i].scalar_type() == torch::kFloat32,
                "AdamW: parameters and gradients must be contiguous float32");
    const float decay = decay_[i] ? static_cast<float>(1 - lr * o_.weight_decay) : 1.0f;
    float* p = params_[i].data_ptr<float>();
    const float* gr = g.data_ptr<float>();
    float* m = m_[i].data_ptr<float>();
    float* v = v_[i].data_ptr<float>();
    at::parallel_for(0, params_[i].numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      adamw_span(p + begin, gr + begin, m + begin, v + begin, end - begin,
                 AdamWScalars{decay, scale, b1, one_b1, b2, one_b2, bias2_sqrt, eps, step_size});
    });
  }
}

void AdamW::set_steps_taken(int64_t t) {
  t_ = t;
  torch::NoGradGuard no_grad;
  for (auto& count : step_counts_) count.fill_(static_cast<double>(t));
}

void AdamW::step_on_accelerator(double lr, double grad_scale) {
  // Which tensors take part, split by weight decay: the two groups of Hugging Face's Trainer.
  std::vector<torch::Tensor> grads;
  std::vector<torch::Tensor> p[2], g[2], m[2], v[2], steps[2];
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& grad = params_[i].grad();
    if (!grad.defined()) continue;
    const int d = decay_[i] && o_.weight_decay != 0 ? 1 : 0;
    grads.push_back(grad);
    p[d].push_back(params_[i]);
    g[d].push_back(grad);
    m[d].push_back(m_[i]);
    v[d].push_back(v_[i]);
    steps[d].push_back(step_counts_[i]);
  }
  if (grads.empty()) return;
  // The gradients scaled in place, as clip_grad_norm_ does before the optimizer reads them.
  if (grad_scale != 1.0) torch::_foreach_mul_(grads, grad_scale);
#if TORCH_VERSION_MAJOR >= 2
  // As torch.optim.AdamW(fused=True) steps: the counts advanced in one launch, then one fused kernel
  // per group instead of ~6 launches per tensor.
  for (int d = 0; d < 2; ++d) {
    if (p[d].empty()) continue;
    torch::_foreach_add_(steps[d], 1.0);
    at::_fused_adamw_(p[d], g[d], m[d], v[d], /*max_exp_avg_sqs=*/{}, steps[d], lr, o_.beta1, o_.beta2,
                      d == 1 ? o_.weight_decay : 0.0, o_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
#else
  const double bias2_sqrt = std::sqrt(1 - std::pow(o_.beta2, static_cast<double>(t_)));
  const double step_size = lr / (1 - std::pow(o_.beta1, static_cast<double>(t_)));
  for (int d = 0; d < 2; ++d)
    for (std::size_t i = 0; i < p[d].size(); ++i) {
      if (d == 1) p[d][i].mul_(1 - lr * o_.weight_decay);
      m[d][i].mul_(o_.beta1).add_(g[d][i], 1 - o_.beta1);
      v[d][i].mul_(o_.beta2).addcmul_(g[d][i], g[d][i], 1 - o_.beta2);
      p[d][i].addcdiv_(m[d][i], (v[d][i].sqrt() / bias2_sqrt).add_(o_.eps), -step_size);
    }
#endif
}

double grad_norm(const std::vector<torch::Tensor>& params) {
  double sum = 0;
  std::vector<torch::Tensor> on_device;  // an accelerator's gradients: norms in one launch, read back once
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (!g.device().is_cpu()) {
      on_device.push_back(g);
      continue;
    }
    const auto gc = g.contiguous();
    const float* d = gc.data_ptr<float>();
    sum += at::parallel_reduce(
        0, gc.numel(), 1 << 15, 0.0,
        [&](int64_t begin, int64_t end, double acc) { return acc + sum_of_squares(d + begin, end - begin); },
        std::plus<double>());
  }
  if (!on_device.empty()) {
    const auto norms = torch::stack(torch::_foreach_norm(on_device, 2)).to(torch::kFloat64);
    sum += norms.pow(2).sum().item<double>();
  }
  return std::sqrt(sum);
}

double clip_coefficient(double norm, double max_norm) {
  return std::min(1.0f, static_cast<float>(max_norm) / (static_cast<float>(norm) + 1e-6f));
}

double LinearSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  const double remaining = static_cast<double>(total_steps - step) / static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  return base_lr * std::max(0.0, remaining);
}

}  // namespace emotune::train
