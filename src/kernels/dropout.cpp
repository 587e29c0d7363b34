#include "kernels/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <mutex>
#include <stdexcept>

namespace emotune::kernels {

DropoutMask DropoutMask::draw(double p) {
  if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument("a dropout mask's probability must be in [0, 1)");
  DropoutMask m;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    m.seed = gen.get<at::CPUGeneratorImpl>()->random64();
  }
  m.threshold = static_cast<std::uint32_t>(std::min(4294967295.0, std::round(p * 4294967296.0)));
  m.scale = static_cast<float>(1.0 / (1.0 - p));
  return m;
}

void DropoutMask::save(torch::autograd::AutogradContext* ctx) const {
  ctx->saved_data["dropout_seed"] = static_cast<int64_t>(seed);
  ctx->saved_data["dropout_threshold"] = static_cast<int64_t>(threshold);
  ctx->saved_data["dropout_scale"] = static_cast<double>(scale);
}

DropoutMask DropoutMask::saved(torch::autograd::AutogradContext* ctx) {
  DropoutMask m;
  m.seed = static_cast<std::uint64_t>(ctx->saved_data["dropout_seed"].toInt());
  m.threshold = static_cast<std::uint32_t>(ctx->saved_data["dropout_threshold"].toInt());
  m.scale = static_cast<float>(ctx->saved_data["dropout_scale"].toDouble());
  return m;
}

namespace {

// out[i] = in[i] * mask.factor(first + i); both may be the same buffer.
__attribute__((target_clones("avx512f", "avx2", "default"))) void apply_mask(const float* in, float* out, int64_t n,
                                                                              std::uint64_t first,
                                                                              const DropoutMask& mask) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * mask.factor(first + static_cast<std::uint64_t>(i));
}

torch::Tensor masked(const torch::Tensor& x, const DropoutMask& mask) {
  const auto in = x.contiguous();
  auto out = torch::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, in.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    apply_mask(src + begin, dst + begin, end - begin, static_cast<std::uint64_t>(begin), mask);
  });
  return out;
}

struct HashedDropout : torch::autograd::Function<HashedDropout> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double p) {
    const auto mask = DropoutMask::draw(p);
    mask.save(ctx);
    return masked(x, mask);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto mask = DropoutMask::saved(ctx);
    return {masked(grads[0], mask), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor dropout(const torch::Tensor& x, double p) {
  if (p == 0.0) return x;
  if (p >= 1.0) return x * 0.0;  // every element dropped, as libtorch's dropout answers p = 1
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat32) return torch::dropout(x, p, /*train=*/true);
  return HashedDropout::apply(x, p);
}

DropoutImpl::DropoutImpl(double p) : p(p) {
  if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("dropout probability must be in [0, 1]");
}

torch::Tensor DropoutImpl::forward(const torch::Tensor& x) { return dropout(x, active_p()); }

}  // namespace emotune::kernels
