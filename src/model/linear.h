// A linear layer with torch::nn::Linear's parameters (weight [out, in], bias [out]), initialisation
// and math. For inference it can be packed (model/packed_linear.h): float or int8 weights in oneDNN's
// layout, optionally with the next activation fused; the plain parameters are then released.
#pragma once

#include <torch/nn.h>

#include <memory>

#include "model/onednn_matmul.h"
#include "model/packed_linear.h"

namespace emotune::model {

struct LinearImpl : torch::nn::Module {
  // initialise = false leaves the tensors uninitialised (and untouched, so not yet resident): for a
  // layer whose values are about to be loaded.
  LinearImpl(int64_t in_features, int64_t out_features, bool initialise = true);
  // act(x W^T + b) once packed with an activation; x W^T + b otherwise.
  torch::Tensor forward(const torch::Tensor& x);

  // From here on x W^T is a bfloat16 product (oneDNN on CPUs with AVX512_BF16/AMX; its float32
  // accumulation rounded to bfloat16), added to the float32 bias in float32. Weights, their gradients
  // and everything outside the product stay float32: the master weights of mixed-precision training.
  void use_bf16_products() { bf16_products_ = true; }
  // From here on the float32 products (forward and backward) run through oneDNN's kernels instead
  // of libtorch's BLAS; the math is the same up to summation order.
  void use_onednn_products(std::shared_ptr<const OnednnMatmul> mm) { onednn_ = std::move(mm); }

  // Inference only: afterwards weight and bias are empty and the layer can no longer train or be saved.
  void pack(Precision precision, Activation activation = Activation::None);
  const PackedLinear* packed() const { return packed_.get(); }
  // Empties weight and bias, giving their memory back, once a packed copy (here or a fused one) reads
  // them no more.
  void release_plain();

  torch::Tensor weight, bias;

 private:
  std::shared_ptr<const PackedLinear> packed_;
  bool bf16_products_ = false;
  std::shared_ptr<const OnednnMatmul> onednn_;
};
TORCH_MODULE(Linear);

}  // namespace emotune::model
