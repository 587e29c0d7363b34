#include "model/linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

namespace emotune::model {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features) {
  // Take torch::nn::Linear's freshly initialised tensors, so construction draws the same random
  // numbers as the stock layer would.
  torch::nn::Linear stock(in_features, out_features);
  weight = register_parameter("weight", stock->weight);
  bias = register_parameter("bias", stock->bias);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (packed_) return packed_->apply_dynamic(x.contiguous(), /*reduce_range=*/false);
  return torch::nn::functional::linear(x, weight, bias);
}

void LinearImpl::quantize_int8() {
  if (packed_) return;
  TORCH_CHECK(weight.device().is_cpu(), "int8 quantization runs on the CPU only");
  torch::NoGradGuard no_grad;
  // oneDNN's int8 kernels; fbgemm is not built into Debian's libtorch and qnnpack is slower than
  // float on x86.
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  // Symmetric per output channel: scale = max |w| / 127, zero point 0.
  const auto scales = (weight.abs().amax(1).to(torch::kFloat64) / 127.0).clamp_min(1e-12);
  const auto zero_points = torch::zeros({weight.size(0)}, torch::kInt64);
  const auto q = torch::quantize_per_channel(weight, scales, zero_points, 0, torch::kQInt8);
  static const auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
  packed_ = prepack.call(q, bias.detach().clone());
  weight.set_data(torch::empty({0}, weight.options()));  // the float copy is no longer read
}

}  // namespace emotune::model
