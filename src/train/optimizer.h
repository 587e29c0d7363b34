// AdamW exactly as torch.optim.AdamW updates (decoupled weight decay, bias-corrected moments),
// global-norm gradient clipping as torch.nn.utils.clip_grad_norm_, and the linear schedule with
// warm-up of Hugging Face's get_linear_schedule_with_warmup.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace emotune::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  // `decay[i]` says whether weight decay applies to params[i].
  AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, AdamWOptions options);

  // One update with learning rate `lr` using the parameters' .grad() times `grad_scale` (the clipping
  // coefficient). One fused pass per tensor reads each of param, grad, exp_avg, exp_avg_sq once, where
  // the op-by-op form makes about twenty passes: the update is memory-bound, so this is what it costs.
  void step(double lr, double grad_scale = 1.0);
  int64_t steps_taken() const { return t_; }
  void set_steps_taken(int64_t t) { t_ = t; }
  std::vector<torch::Tensor>& exp_avg() { return m_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return v_; }

 private:
  std::vector<torch::Tensor> params_, m_, v_;
  std::vector<bool> decay_;
  AdamWOptions o_;
  int64_t t_ = 0;
};

// Global L2 norm of the gradients (accumulated in double).
double grad_norm(const std::vector<torch::Tensor>& params);

// torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max_norm / (norm + 1e-6)), as float32.
double clip_coefficient(double norm, double max_norm);

struct LinearSchedule {
  double base_lr = 2e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // Learning rate of update number `step` (0-based), as LambdaLR gives it.
  double lr_at(int64_t step) const;
};

}  // namespace emotune::train
