#include "model/linear.h"

namespace emotune::model {

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

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (packed_) return packed_->forward(x);
  if (bf16_products_) {
    // The casts are differentiable: the backward products run in bfloat16 too, and the weight's
    // gradient arrives in float32.
    const auto product = torch::nn::functional::linear(x.to(torch::kBFloat16), weight.to(torch::kBFloat16));
    return product.to(x.scalar_type()) + bias;
  }
  if (onednn_) return onednn_linear(x, weight, bias, onednn_);
  return torch::nn::functional::linear(x, weight, bias);
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

}  // namespace emotune::model
