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
  // On an accelerator the gradients are scaled in place and libtorch's fused AdamW updates every
  // tensor in a few launches, with no read back to the host.
  void step(double lr, double grad_scale = 1.0);
  int64_t steps_taken() const { return t_; }
  void set_steps_taken(int64_t t);
  std::vector<torch::Tensor>& exp_avg() { return m_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return v_; }

 private:
  void step_on_accelerator(double lr, double grad_scale);

  std::vector<torch::Tensor> params_, m_, v_;
  bool on_accelerator_ = false;  // the parameters' device, fixed at construction
  std::vector<torch::Tensor> step_counts_;  // accelerators: each tensor's update count, as the fused kernel reads it
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
