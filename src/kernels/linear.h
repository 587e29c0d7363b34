// A linear layer with torch::nn::Linear's parameters (weight [out, in], bias [out]), initialisation
// and math. For inference it can be packed (kernels/packed_linear.h): float or int8 weights in oneDNN's
// layout, optionally with the next activation fused; the plain parameters are then released.
#pragma once

#include <torch/nn.h>

#include <memory>

#include "kernels/onednn_matmul.h"
#include "kernels/packed_linear.h"

namespace emotune::kernels {

// Where a trainable (not packed) linear layer computes its products x W^T, dY W and dY^T X.
enum class Products {
  Libtorch,   // torch::nn::functional::linear: libtorch's BLAS on the CPU
  OnednnF32,  // float32 through oneDNN's kernels (OnednnMatmul): the same math up to summation order
  // bfloat16 operands (oneDNN on CPUs with AVX512_BF16/AMX; float32 accumulation rounded to
  // bfloat16), added to the float32 bias in float32. Weights, their gradients and everything outside
  // the product stay float32: the master weights of mixed-precision training.
  Bf16,
};
const char* products_name(Products p);  // "blas", "onednn", "bf16"

struct LinearImpl : torch::nn::Module {
  // initialise = false leaves the tensors uninitialised (and untouched, so not yet resident): for a
  // layer whose values are about to be loaded.
  LinearImpl(int64_t in_features, int64_t out_features, bool initialise = true);
  // act(x W^T + b) once packed with an activation; x W^T + b otherwise.
  torch::Tensor forward(const torch::Tensor& x);

  // The products from here on; OnednnF32 computes them with `onednn` (which may be shared by layers).
  void use_products(Products products, std::shared_ptr<const OnednnMatmul> onednn = nullptr);

  // Inference only: afterwards weight and bias are empty and the layer can no longer train or be saved.
  void pack(Precision precision, Activation activation = Activation::None);
  const PackedLinear* packed() const { return packed_.get(); }
  // Empties weight and bias, giving their memory back, once a packed copy (here or a fused one) reads
  // them no more.
  void release_plain();

  torch::Tensor weight, bias;

 private:
  std::shared_ptr<const PackedLinear> packed_;
  Products products_ = Products::Libtorch;
  std::shared_ptr<const OnednnMatmul> onednn_;
};
TORCH_MODULE(Linear);

}  // namespace emotune::kernels
