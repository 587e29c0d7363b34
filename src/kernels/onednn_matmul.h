// Float32 matrix products for training through oneDNN (its AVX-512/AMX kernels, whatever OpenBLAS
// was built or told to run), and the linear layer's forward and backward built on them.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace emotune::kernels {

// a [m, k] x b [k, n] for 2-d float32 CPU tensors, each either row-major or the transpose of a
// row-major tensor (as t() gives); any sizes. Safe to call from several threads at once.
class OnednnMatmul {
 public:
  OnednnMatmul();
  ~OnednnMatmul();
  OnednnMatmul(const OnednnMatmul&) = delete;
  OnednnMatmul& operator=(const OnednnMatmul&) = delete;

  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const;
  const char* implementation() const;

 private:
  struct Kernels;
  std::unique_ptr<Kernels> kernels_;
};

// x W^T + b with the products (forward, and both of backward's) through `mm`; differentiable in x,
// weight and bias like torch::nn::functional::linear.
torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            std::shared_ptr<const OnednnMatmul> mm);

}  // namespace emotune::kernels
