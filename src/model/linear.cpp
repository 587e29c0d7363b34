#include "model/linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdlib>

namespace emotune::model {

namespace {
// Activations quantised to 7 bits: without VNNI, the u8 x s8 kernels add pairs of products in 16 bits,
// which saturate with full 8-bit inputs (measured: 11% worst-case error on a 768x3072 layer, against
// 2% with 7 bits). PyTorch's quantize_dynamic makes the same choice.
constexpr bool kReduceRange = true;
}  // namespace

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features) {
  // Take torch::nn::Linear's freshly initialised tensors, so construction draws the same random
  // numbers as the stock layer would.
  torch::nn::Linear stock(in_features, out_features);
  weight = register_parameter("weight", stock->weight);
  bias = register_parameter("bias", stock->bias);
}

LinearImpl::LinearImpl(torch::Tensor w, torch::Tensor b) {
  weight = register_parameter("weight", std::move(w));
  bias = register_parameter("bias", std::move(b));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (packed_) {
    // oneDNN builds a kernel per input shape, which costs as much as the product itself; rounding the
    // row count up to a multiple of 32 (8 for short inputs) (zero rows, cut off again) lets batches reuse a few kernels.
    const int64_t rows = x.numel() / x.size(-1), step = rows <= 64 ? 8 : 32;
    const int64_t padded = (rows + step - 1) / step * step;
    if (padded == rows) return packed_->apply_dynamic(x.contiguous(), kReduceRange);
    auto flat = torch::empty({padded, x.size(-1)}, x.options());
    flat.narrow(0, 0, rows).copy_(x.reshape({rows, x.size(-1)}));
    flat.narrow(0, rows, padded - rows).zero_();
    auto out = packed_->apply_dynamic(flat, kReduceRange).narrow(0, 0, rows);
    auto shape = x.sizes().vec();
    shape.back() = out.size(-1);
    return out.reshape(shape);
  }
  return torch::nn::functional::linear(x, weight, bias);
}

void LinearImpl::quantize_int8() {
  if (packed_) return;
  TORCH_CHECK(weight.device().is_cpu(), "int8 quantization runs on the CPU only");
  torch::NoGradGuard no_grad;
  // oneDNN's int8 kernels; fbgemm is not built into Debian's libtorch and qnnpack is slower than
  // float on x86.
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  // oneDNN caches 1024 kernels by default, each with its own copy of reordered weights: ~450 MB for
  // DistilBERT. A batch needs three (one per projection shape), so a small cache is as fast. oneDNN
  // reads this once, on first use; a user's own setting wins.
  ::setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32", /*overwrite=*/0);
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
