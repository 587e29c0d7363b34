#include "kernels/linear.h"

namespace emotune::kernels {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool initialise) {
  if (!initialise) {
    weight = register_parameter("weight", torch::empty({out_features, in_features}));
    bias = register_parameter("bias", torch::empty({out_features}));
    return;
  }
  // Take torch::nn::Linear's freshly initialised tensors, so construction draws the same random
  // numbers as the stock layer would.
  torch::nn::Linear stock(in_features, out_features);
  weight = register_parameter("weight", stock->weight);
  bias = register_parameter("bias", stock->bias);
}

const char* products_name(Products p) {
  switch (p) {
    case Products::Libtorch: return "blas";
    case Products::OnednnF32: return "onednn";
    case Products::Bf16: return "bf16";
  }
  return "?";
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (packed_) return packed_->forward(x);
  switch (products_) {
    case Products::Libtorch: return torch::nn::functional::linear(x, weight, bias);
    case Products::OnednnF32: return onednn_linear(x, weight, bias, onednn_);
    case Products::Bf16: {
      // The casts are differentiable: the backward products run in bfloat16 too, and the weight's
      // gradient arrives in float32.
      const auto product = torch::nn::functional::linear(x.to(torch::kBFloat16), weight.to(torch::kBFloat16));
      return product.to(x.scalar_type()) + bias;
    }
  }
  throw std::logic_error("linear layer: unknown products");
}

void LinearImpl::use_products(Products products, std::shared_ptr<const OnednnMatmul> onednn) {
  if (products == Products::OnednnF32 && !onednn) throw std::logic_error("oneDNN products without a oneDNN matmul");
  products_ = products;
  onednn_ = std::move(onednn);
}

void LinearImpl::pack(Precision precision, Activation activation) {
  if (packed_) throw std::logic_error("linear layer packed twice");
  packed_ = std::make_shared<const PackedLinear>(weight.detach(), bias.detach(), precision, activation);
  release_plain();
}

void LinearImpl::release_plain() {
  torch::NoGradGuard no_grad;
  weight.set_data(torch::empty({0}, weight.options()));
  bias.set_data(torch::empty({0}, bias.options()));
}

}  // namespace emotune::kernels
