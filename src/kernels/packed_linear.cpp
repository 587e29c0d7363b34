#include "kernels/packed_linear.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <oneapi/dnnl/dnnl.hpp>
#include <mutex>
#include <unordered_map>

namespace emotune::kernels {

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct ActivationQuant {
  float scale;
  int32_t zero_point;
};

// Asymmetric per-tensor parameters covering [min(lo, 0), max(hi, 0)], so that 0 is exact.
ActivationQuant choose_activation_quant(float lo, float hi, int levels) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  double scale = (static_cast<double>(hi) - lo) / levels;
  if (!(scale > 0) || !std::isfinite(scale)) return {1.0f, 0};  // all zeros, or non-finite input
  const double zero = std::nearbyint(-lo / scale);
  return {static_cast<float>(scale), static_cast<int32_t>(std::clamp(zero, 0.0, static_cast<double>(levels)))};
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
                                                                 float zero_point, float levels, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv_scale) + zero_point;
    q[i] = static_cast<uint8_t>(std::clamp(v, 0.0f, levels));
  }
}

dt src_type(Precision p) { return p == Precision::Int8 ? dt::u8 : p == Precision::BFloat16 ? dt::bf16 : dt::f32; }
dt weight_type(Precision p) { return p == Precision::Int8 ? dt::s8 : p == Precision::BFloat16 ? dt::bf16 : dt::f32; }

dnnl::algorithm eltwise_of(Activation a) {
  return a == Activation::Gelu ? dnnl::algorithm::eltwise_gelu_erf : dnnl::algorithm::eltwise_relu;
}

std::size_t element_bytes(Precision p) { return p == Precision::Int8 ? 1 : p == Precision::BFloat16 ? 2 : 4; }

// Row counts of the fixed-size kernels: full chunks of kChunkRows, and the rest exact up to kRowStep
// rows (one short text: padding it to 32 rows cost 50% more time in float32) and rounded up to a
// multiple of kRowStep above, so a layer makes at most kRowStep + kChunkRows / kRowStep kernels
// (each ~0.2-2 ms once, on first use) whatever the batches.
constexpr int64_t kChunkRows = 256, kRowStep = 32;

int64_t kernel_rows(int64_t rows) { return rows <= kRowStep ? rows : (rows + kRowStep - 1) / kRowStep * kRowStep; }
}  // namespace

// oneDNN 2.x chooses its fast kernels (brgemm: AVX-512, AMX) only for a fixed row count and, for int8,
// fixed output scales; with a run-time row count it falls back to a generic GEMM that repacks the
// weights on every call (2x slower for one text). So where brgemm is available the layer keeps one
// primitive per row count (made on first use; all share one weight layout), and int8's per-call
// activation scale and zero point move into post-ops: y = act(x_scale * (w_scale[n] * acc) + bias_eff[n]),
// bias_eff[n] = bias[n] - x_scale * x_zero * w_scale[n] * sum_k w_q[n, k]. Elsewhere (AVX2 CPUs) one
// run-time-rows primitive serves every call.
struct PackedLinear::Kernel {
  using Primitive = std::pair<dnnl::matmul::primitive_desc, dnnl::matmul>;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  // The run-time-rows primitive's description, or the fixed one's for kRowStep rows: either way its
  // weight layout is the one `weights` holds.
  dnnl::matmul::primitive_desc desc;
  dnnl::matmul matmul;  // run-time rows only
  bool fixed_rows = false;
  dnnl::primitive_attr attr;  // fixed rows: every row count's attributes
  dnnl::memory weights;
  std::vector<float> bias;
  std::vector<float> weight_scales;  // int8: one per output channel (max |w| / 127)
  std::vector<float> weight_sums;    // int8: sum of each output channel's int8 weights
  int activation_levels = 0;         // int8: activations quantised to 0..activation_levels
  mutable std::mutex mutex;
  mutable std::unordered_map<int64_t, Primitive> by_rows;  // fixed rows: made on first use

  // The fixed-rows primitive for `rows` rows of the layer [in -> out].
  const Primitive& for_rows(int64_t rows, int64_t in, int64_t out, Precision precision) const;
};

namespace {

dnnl::primitive_attr attributes(Precision precision, Activation activation, bool fixed_rows,
                                const std::vector<float>& weight_scales, int64_t out) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per call, so concurrent calls do not share it
  dnnl::post_ops ops;
  if (precision == Precision::Int8 && fixed_rows) {
    attr.set_output_scales(/*mask: per output column*/ 1 << 1, weight_scales);
    ops.append_binary(dnnl::algorithm::binary_mul, dnnl::memory::desc({1, 1}, dt::f32, tag::ab));    // x_scale
    ops.append_binary(dnnl::algorithm::binary_add, dnnl::memory::desc({1, out}, dt::f32, tag::ab));  // bias_eff
  } else if (precision == Precision::Int8) {
    // dst = s[n] * (sum_k x_q * w_q + bias'), s[n] = x_scale * w_scale[n], set per call. oneDNN adds an
    // int8 product's bias before the output scale, and the activations' zero point is folded into it:
    // bias' = bias / s[n] - x_zero * sum_k w_q[n, k]. (oneDNN's own zero-point path costs ~20% on short inputs.)
    attr.set_output_scales(/*mask: per output column*/ 1 << 1, {DNNL_RUNTIME_F32_VAL});
  }
  if (activation != Activation::None) ops.append_eltwise(1.0f, eltwise_of(activation), 0.0f, 0.0f);
  attr.set_post_ops(ops);
  return attr;
}

// rows: a count, or DNNL_RUNTIME_DIM_VAL. Int8 on fixed rows takes its bias as a post-op.
dnnl::matmul::primitive_desc describe(int64_t rows, int64_t in, int64_t out, Precision precision,
                                      const dnnl::memory::desc& weights, const dnnl::primitive_attr& attr,
                                      const dnnl::engine& engine) {
  const dnnl::memory::desc src({rows, in}, src_type(precision), tag::ab);
  const dnnl::memory::desc dst({rows, out}, dt::f32, tag::ab);
  const bool post_op_bias = precision == Precision::Int8 && rows != DNNL_RUNTIME_DIM_VAL;
  if (post_op_bias) return {dnnl::matmul::desc(src, weights, dst), attr, engine};
  return {dnnl::matmul::desc(src, weights, dnnl::memory::desc({1, out}, dt::f32, tag::ab), dst), attr, engine};
}

}  // namespace

const PackedLinear::Kernel::Primitive& PackedLinear::Kernel::for_rows(int64_t rows, int64_t in, int64_t out,
                                                                     Precision precision) const {
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = by_rows.find(rows);
  if (it != by_rows.end()) return it->second;
  const auto weights_desc = desc.weights_desc();
  auto pd = describe(rows, in, out, precision, weights_desc, attr, engine);
  if (pd.weights_desc() != weights_desc)
    throw std::logic_error("packed linear layer: oneDNN wants another weight layout for " + std::to_string(rows) + " rows");
  return by_rows.emplace(rows, std::make_pair(pd, dnnl::matmul(pd))).first->second;
}

namespace {

// Executes one matmul with `args` (source, weights, destination and the call's own inputs) and a
// scratchpad of its own, so that concurrent calls share nothing.
void execute(const dnnl::matmul::primitive_desc& desc, const dnnl::matmul& matmul, const dnnl::engine& engine,
             std::unordered_map<int, dnnl::memory>& args) {
  const auto scratch_desc = desc.scratchpad_desc();
  const auto scratch = torch::empty({static_cast<int64_t>(scratch_desc.get_size())}, torch::kUInt8);
  args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_desc, engine, scratch.data_ptr()));
  dnnl::stream stream(engine);
  matmul.execute(stream, args);
  stream.wait();
}

}  // namespace

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

int int8_activation_levels() {
  static const int levels = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    auto has = [isa](dnnl_cpu_isa_t i) { return (isa & static_cast<unsigned>(i)) == static_cast<unsigned>(i); };
    return has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni) ? 255 : 127;
  }();
  return levels;
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
  if (int8) k->activation_levels = int8_activation_levels();

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
  const dnnl::memory::desc any_weights({in_, out_}, weight_type(precision), tag::any);
  try {  // brgemm's fixed-rows kernels where this oneDNN and CPU have them (see Kernel)
    k->attr = attributes(precision, activation, true, k->weight_scales, out_);
    k->desc = describe(kRowStep, in_, out_, precision, any_weights, k->attr, k->engine);
    k->fixed_rows = std::string(k->desc.impl_info_str()).rfind("brg", 0) == 0;
  } catch (const dnnl::error&) {
    k->fixed_rows = false;
  }
  if (k->fixed_rows) {
    k->by_rows.emplace(kRowStep, std::make_pair(k->desc, dnnl::matmul(k->desc)));
  } else {
    k->attr = attributes(precision, activation, false, k->weight_scales, out_);
    k->desc = describe(DNNL_RUNTIME_DIM_VAL, in_, out_, precision, any_weights, k->attr, k->engine);
    k->matmul = dnnl::matmul(k->desc);
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

namespace {

// The input as the kernel reads it: float as it is, bf16 rounded, or int8-quantised (uint8 0..levels).
struct Operand {
  torch::Tensor data;
  ActivationQuant quant{1.0f, 0};
};

Operand quantize_activations(const torch::Tensor& src, int levels) {
  // Both passes split the input into fixed chunks over the intra-op threads.
  const float* xs = src.data_ptr<float>();
  const int64_t n = src.numel(), chunk = 1 << 15, chunks = (n + chunk - 1) / chunk;
  std::vector<float> lows(static_cast<std::size_t>(chunks)), highs(lows.size());
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) min_max(xs + c * chunk, std::min(chunk, n - c * chunk), lows[c], highs[c]);
  });
  Operand o;
  o.quant = choose_activation_quant(*std::min_element(lows.begin(), lows.end()),
                                    *std::max_element(highs.begin(), highs.end()), levels);
  o.data = torch::empty(src.sizes(), torch::kUInt8);
  uint8_t* qs = o.data.data_ptr<uint8_t>();
  const auto q = o.quant;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      quantize(xs + c * chunk, std::min(chunk, n - c * chunk), 1.0f / q.scale, static_cast<float>(q.zero_point),
               static_cast<float>(levels), qs + c * chunk);
  });
  return o;
}

}  // namespace

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
  Operand operand;
  if (precision_ == Precision::Int8)
    operand = quantize_activations(src, k.activation_levels);
  else
    operand.data = precision_ == Precision::BFloat16 ? src.to(torch::kBFloat16) : src;
  if (k.fixed_rows)
    run_fixed_rows(operand.data, operand.quant.scale, operand.quant.zero_point, y);
  else
    run_any_rows(operand.data, operand.quant.scale, operand.quant.zero_point, y);
  return y.view(shape);
}

void PackedLinear::run_any_rows(const torch::Tensor& operand, float x_scale, int32_t x_zero, torch::Tensor& y) const {
  const Kernel& k = *kernel_;
  const int64_t rows = operand.size(0);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_WEIGHTS, k.weights},
      {DNNL_ARG_SRC, dnnl::memory({{rows, in_}, src_type(precision_), tag::ab}, k.engine, operand.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory({{rows, out_}, dt::f32, tag::ab}, k.engine, y.data_ptr())}};
  const dnnl::memory::desc bias_desc({1, out_}, dt::f32, tag::ab);
  std::vector<float> scales, scaled_bias;
  if (precision_ != Precision::Int8) {
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_desc, k.engine, const_cast<float*>(k.bias.data())));
  } else {
    scales.resize(k.bias.size());
    scaled_bias.resize(k.bias.size());
    for (std::size_t j = 0; j < scales.size(); ++j) {
      scales[j] = x_scale * k.weight_scales[j];
      scaled_bias[j] = k.bias[j] / scales[j] - static_cast<float>(x_zero) * k.weight_sums[j];
    }
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_desc, k.engine, scaled_bias.data()));
    args.emplace(DNNL_ARG_ATTR_OUTPUT_SCALES, dnnl::memory({{out_}, dt::f32, tag::a}, k.engine, scales.data()));
  }
  execute(k.desc, k.matmul, k.engine, args);
}

void PackedLinear::run_fixed_rows(const torch::Tensor& operand, float x_scale, int32_t x_zero, torch::Tensor& y) const {
  const Kernel& k = *kernel_;
  const int64_t rows = operand.size(0);
  std::vector<float> bias_eff;
  if (precision_ == Precision::Int8) {
    bias_eff.resize(k.bias.size());
    for (std::size_t j = 0; j < bias_eff.size(); ++j)
      bias_eff[j] = k.bias[j] - x_scale * static_cast<float>(x_zero) * k.weight_scales[j] * k.weight_sums[j];
  }
  auto run = [&](int64_t m, void* src, float* dst) {
    const auto& [desc, matmul] = k.for_rows(m, in_, out_, precision_);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_WEIGHTS, k.weights},
        {DNNL_ARG_SRC, dnnl::memory({{m, in_}, src_type(precision_), tag::ab}, k.engine, src)},
        {DNNL_ARG_DST, dnnl::memory({{m, out_}, dt::f32, tag::ab}, k.engine, dst)}};
    if (precision_ == Precision::Int8) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                   dnnl::memory({{1, 1}, dt::f32, tag::ab}, k.engine, &x_scale));
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                   dnnl::memory({{1, out_}, dt::f32, tag::ab}, k.engine, bias_eff.data()));
    } else {
      args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, out_}, dt::f32, tag::ab}, k.engine, const_cast<float*>(k.bias.data())));
    }
    execute(desc, matmul, k.engine, args);
  };
  auto* bytes = static_cast<uint8_t*>(operand.data_ptr());
  const auto row_bytes = static_cast<int64_t>(element_bytes(precision_)) * in_;
  for (int64_t start = 0; start < rows; start += kChunkRows) {
    const int64_t n = std::min(kChunkRows, rows - start);
    const int64_t m = kernel_rows(n);
    float* dst = y.data_ptr<float>() + start * out_;
    if (m == n) {
      run(m, bytes + start * row_bytes, dst);
      continue;
    }
    // The last rows, padded with zero rows to the kernel's row count.
    auto padded_src = torch::zeros({m, in_}, operand.options());
    padded_src.narrow(0, 0, n).copy_(operand.narrow(0, start, n));
    auto padded_dst = torch::empty({m, out_}, y.options());
    run(m, padded_src.data_ptr(), padded_dst.data_ptr<float>());
    y.narrow(0, start, n).copy_(padded_dst.narrow(0, 0, n));
  }
}

}  // namespace emotune::kernels
