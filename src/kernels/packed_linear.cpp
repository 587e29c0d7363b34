#include "kernels/packed_linear.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

namespace emotune::kernels {

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// Activations are quantised to 7 bits (0..127): without VNNI, the u8 x s8 kernels add pairs of products
// in 16 bits, which saturate with full 8-bit inputs (2 * 255 * 127 > 32767; measured 11% worst-case
// error on a 768x3072 layer, against 2% with 7 bits). PyTorch's quantize_dynamic does the same.
constexpr int kActivationMax = 127;

struct ActivationQuant {
  float scale;
  int32_t zero_point;
};

// Asymmetric per-tensor parameters covering [min(lo, 0), max(hi, 0)], so that 0 is exact.
ActivationQuant choose_activation_quant(float lo, float hi) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  double scale = (static_cast<double>(hi) - lo) / kActivationMax;
  if (!(scale > 0) || !std::isfinite(scale)) return {1.0f, 0};  // all zeros, or non-finite input
  const double zero = std::nearbyint(-lo / scale);
  return {static_cast<float>(scale), static_cast<int32_t>(std::clamp(zero, 0.0, double{kActivationMax}))};
}

// libtorch 1.13's aminmax and quantize_per_tensor took longer than the int8 product itself on
// [600, 3072] inputs (scalar loops); these two passes vectorise (AVX2 clone, -O3 in CMakeLists.txt).
__attribute__((target_clones("avx2", "default"))) void min_max(const float* x, int64_t n, float& lo, float& hi) {
  constexpr int kLanes = 8;  // independent lanes: an elementwise min/max the compiler keeps in registers
  float l[kLanes], h[kLanes];
  for (int j = 0; j < kLanes; ++j) l[j] = h[j] = x[0];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      l[j] = std::min(l[j], x[i + j]);
      h[j] = std::max(h[j], x[i + j]);
    }
  for (; i < n; ++i) {
    l[0] = std::min(l[0], x[i]);
    h[0] = std::max(h[0], x[i]);
  }
  lo = *std::min_element(l, l + kLanes);
  hi = *std::max_element(h, h + kLanes);
}

__attribute__((target_clones("avx2", "default"))) void quantize(const float* x, int64_t n, float inv_scale,
                                                                 float zero_point, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv_scale) + zero_point;
    q[i] = static_cast<uint8_t>(std::clamp(v, 0.0f, float{kActivationMax}));
  }
}

dt src_type(Precision p) { return p == Precision::Int8 ? dt::u8 : p == Precision::BFloat16 ? dt::bf16 : dt::f32; }
dt weight_type(Precision p) { return p == Precision::Int8 ? dt::s8 : p == Precision::BFloat16 ? dt::bf16 : dt::f32; }

dnnl::algorithm eltwise_of(Activation a) {
  return a == Activation::Gelu ? dnnl::algorithm::eltwise_gelu_erf : dnnl::algorithm::eltwise_relu;
}
}  // namespace

struct PackedLinear::Kernel {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::matmul::primitive_desc desc;
  dnnl::matmul matmul;
  dnnl::memory weights;
  std::vector<float> bias;
  std::vector<float> weight_scales;  // int8: one per output channel (max |w| / 127)
  std::vector<float> weight_sums;    // int8: sum of each output channel's int8 weights
};

bool built_with_onednn() { return true; }

std::string onednn_isa_name() {
  switch (static_cast<dnnl_cpu_isa_t>(dnnl::get_effective_cpu_isa())) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

bool cpu_runs_bf16() {
  // oneDNN's ISA values are bit sets: an ISA includes another when it has all of its bits.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
  return (isa & bf16) == bf16;
}

PackedLinear::PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias, Precision precision,
                           Activation activation)
    : in_(weight.size(1)), out_(weight.size(0)), precision_(precision), activation_(activation) {
  if (!weight.is_cpu() || weight.scalar_type() != torch::kFloat32 || weight.dim() != 2)
    throw std::invalid_argument("packed linear layers need a 2-d float weight on the CPU");
  if (bias.numel() != out_) throw std::invalid_argument("packed linear layer: bias does not match the weight");
  torch::NoGradGuard no_grad;
  auto k = std::make_shared<Kernel>();
  const bool int8 = precision == Precision::Int8;

  // The row count is a run-time dimension: one kernel and one weight layout serve every batch.
  const auto rows = DNNL_RUNTIME_DIM_VAL;
  const dnnl::memory::desc src({rows, in_}, src_type(precision), tag::ab);
  const dnnl::memory::desc any_weights({in_, out_}, weight_type(precision), tag::any);
  const dnnl::memory::desc bias_desc({1, out_}, dt::f32, tag::ab);
  const dnnl::memory::desc dst({rows, out_}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per call, so concurrent calls do not share it
  if (int8) {
    // dst = s[n] * (sum_k x_q * w_q + bias'), s[n] = x_scale * w_scale[n], set per call. oneDNN adds an
    // int8 product's bias before the output scale, and the activations' zero point is folded into it:
    // bias' = bias / s[n] - x_zero * sum_k w_q[n, k]. (oneDNN's own zero-point path costs ~20% on short inputs.)
    attr.set_output_scales(/*mask: per output column*/ 1 << 1, {DNNL_RUNTIME_F32_VAL});
  }
  if (activation != Activation::None) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, eltwise_of(activation), 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  k->desc = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, any_weights, bias_desc, dst), attr, k->engine);
  k->matmul = dnnl::matmul(k->desc);

  // The weight as oneDNN sees it: [in, out] with column-major strides, i.e. torch's [out, in] rows.
  torch::Tensor plain = weight.contiguous();
  if (int8) {
    // Symmetric per output channel: scale = max |w| / 127, zero point 0. In place where possible: a
    // model is packed while it loads, and temporaries would raise its peak memory.
    const auto [lo, hi] = torch::aminmax(plain, 1);
    const auto scales = (torch::maximum(lo.neg(), hi) / 127.0f).clamp_min(1e-12f).contiguous();
    plain = plain.div(scales.unsqueeze(1)).round_().clamp_(-127, 127).to(torch::kInt8);
    k->weight_scales.assign(scales.data_ptr<float>(), scales.data_ptr<float>() + out_);
    const auto sums = plain.sum(1, /*keepdim=*/false, torch::kInt32).to(torch::kFloat32).contiguous();
    k->weight_sums.assign(sums.data_ptr<float>(), sums.data_ptr<float>() + out_);
  } else if (precision == Precision::BFloat16) {
    plain = plain.to(torch::kBFloat16);  // round to nearest even, as oneDNN's own conversion
  }
  dnnl::stream stream(k->engine);
  dnnl::memory user({{in_, out_}, weight_type(precision), tag::ba}, k->engine, plain.data_ptr());
  k->weights = dnnl::memory(k->desc.weights_desc(), k->engine);
  dnnl::reorder(user, k->weights).execute(stream, user, k->weights);
  const auto b = bias.detach().to(torch::kFloat32).contiguous();
  k->bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + out_);
  stream.wait();
  kernel_ = std::move(k);
}

const char* PackedLinear::implementation() const { return kernel_->desc.impl_info_str(); }

torch::Tensor PackedLinear::forward(const torch::Tensor& x) const {
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat32 || x.size(-1) != in_)
    throw std::invalid_argument("packed linear layer: expected float CPU input with " + std::to_string(in_) +
                                " features");
  const Kernel& k = *kernel_;
  const int64_t rows = x.numel() / in_;
  auto shape = x.sizes().vec();
  shape.back() = out_;
  auto y = torch::empty({rows, out_}, x.options());
  if (rows == 0) return y.view(shape);
  const auto src = x.reshape({rows, in_}).contiguous();

  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_WEIGHTS, k.weights},
      {DNNL_ARG_DST, dnnl::memory({{rows, out_}, dt::f32, tag::ab}, k.engine, y.data_ptr())}};
  const auto scratch_desc = k.desc.scratchpad_desc();
  const auto scratch = torch::empty({static_cast<int64_t>(scratch_desc.get_size())}, torch::kUInt8);
  args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_desc, k.engine, scratch.data_ptr()));

  torch::Tensor operand;  // the input as the kernel reads it (float, bf16 or u8), alive until it has run
  std::vector<float> scales, scaled_bias;
  const dnnl::memory::desc bias_desc({1, out_}, dt::f32, tag::ab);
  if (precision_ != Precision::Int8) {
    operand = precision_ == Precision::BFloat16 ? src.to(torch::kBFloat16) : src;
    args.emplace(DNNL_ARG_SRC, dnnl::memory({{rows, in_}, src_type(precision_), tag::ab}, k.engine, operand.data_ptr()));
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_desc, k.engine, const_cast<float*>(k.bias.data())));
  } else {
    // Both passes split the input into fixed chunks over the intra-op threads.
    const float* xs = src.data_ptr<float>();
    const int64_t n = src.numel(), chunk = 1 << 15, chunks = (n + chunk - 1) / chunk;
    std::vector<float> lows(static_cast<std::size_t>(chunks)), highs(lows.size());
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) min_max(xs + c * chunk, std::min(chunk, n - c * chunk), lows[c], highs[c]);
    });
    const auto q = choose_activation_quant(*std::min_element(lows.begin(), lows.end()),
                                           *std::max_element(highs.begin(), highs.end()));
    operand = torch::empty({rows, in_}, torch::kUInt8);
    uint8_t* qs = operand.data_ptr<uint8_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        quantize(xs + c * chunk, std::min(chunk, n - c * chunk), 1.0f / q.scale, static_cast<float>(q.zero_point),
                 qs + c * chunk);
    });
    scales.resize(k.bias.size());
    scaled_bias.resize(k.bias.size());
    for (std::size_t j = 0; j < scales.size(); ++j) {
      scales[j] = q.scale * k.weight_scales[j];
      scaled_bias[j] = k.bias[j] / scales[j] - static_cast<float>(q.zero_point) * k.weight_sums[j];
    }
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_desc, k.engine, scaled_bias.data()));
    args.emplace(DNNL_ARG_SRC, dnnl::memory({{rows, in_}, dt::u8, tag::ab}, k.engine, operand.data_ptr()));
    args.emplace(DNNL_ARG_ATTR_OUTPUT_SCALES,
                 dnnl::memory({{out_}, dt::f32, tag::a}, k.engine, scales.data()));
  }
  dnnl::stream stream(k.engine);
  k.matmul.execute(stream, args);
  stream.wait();
  return y.view(shape);
}

}  // namespace emotune::kernels
