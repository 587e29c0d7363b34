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

  // One update with learning rate `lr` using the parameters' .grad().
  void step(double lr);
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

// Scales gradients so that their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

struct LinearSchedule {
  double base_lr = 2e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // Learning rate of update number `step` (0-based), as LambdaLR gives it.
  double lr_at(int64_t step) const;
};

}  // namespace emotune::train
