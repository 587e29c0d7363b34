#include "kernels/onednn_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <stdexcept>
#include <unordered_map>

namespace emotune::kernels {

namespace {
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
constexpr auto kAny = DNNL_RUNTIME_DIM_VAL;

bool row_major(const torch::Tensor& t) { return t.stride(1) == 1 && t.stride(0) >= t.size(1); }
bool transposed(const torch::Tensor& t) { return t.stride(0) == 1 && t.stride(1) >= t.size(0); }

dnnl::memory::desc runtime_desc(bool is_transposed) { return {{kAny, kAny}, dt::f32, is_transposed ? tag::ba : tag::ab}; }

}  // namespace

// One kernel per layout pair (a row-major or transposed, b the same), sizes given at each call.
struct OnednnMatmul::Kernels {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::array<dnnl::matmul::primitive_desc, 4> descs;
  std::array<dnnl::matmul, 4> kernels;
};

OnednnMatmul::OnednnMatmul() : kernels_(std::make_unique<Kernels>()) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per call, so concurrent calls do not share it
  for (int i = 0; i < 4; ++i) {
    const dnnl::matmul::desc d(runtime_desc(i & 1), runtime_desc(i & 2), runtime_desc(false));
    kernels_->descs[static_cast<std::size_t>(i)] = dnnl::matmul::primitive_desc(d, attr, kernels_->engine);
    kernels_->kernels[static_cast<std::size_t>(i)] = dnnl::matmul(kernels_->descs[static_cast<std::size_t>(i)]);
  }
}

OnednnMatmul::~OnednnMatmul() = default;

const char* OnednnMatmul::implementation() const { return kernels_->descs[0].impl_info_str(); }

torch::Tensor OnednnMatmul::operator()(const torch::Tensor& a_in, const torch::Tensor& b_in) const {
  if (a_in.dim() != 2 || b_in.dim() != 2 || a_in.size(1) != b_in.size(0) || a_in.scalar_type() != torch::kFloat32 ||
      b_in.scalar_type() != torch::kFloat32 || !a_in.is_cpu() || !b_in.is_cpu())
    throw std::invalid_argument("oneDNN matmul: expected float CPU matrices [m, k] x [k, n]");
  const auto a = row_major(a_in) || transposed(a_in) ? a_in : a_in.contiguous();
  const auto b = row_major(b_in) || transposed(b_in) ? b_in : b_in.contiguous();
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  auto c = torch::empty({m, n}, a.options());
  if (m == 0 || n == 0) return c;
  if (k == 0) return c.zero_();
  const bool ta = !row_major(a), tb = !row_major(b);
  const auto i = static_cast<std::size_t>((ta ? 1 : 0) | (tb ? 2 : 0));
  const auto& engine = kernels_->engine;
  auto desc = [](const torch::Tensor& t, bool is_transposed) {
    const int64_t lead = is_transposed ? t.stride(1) : t.stride(0);
    return dnnl::memory::desc({t.size(0), t.size(1)}, dt::f32,
                              is_transposed ? dnnl::memory::dims{1, lead} : dnnl::memory::dims{lead, 1});
  };
  const auto scratch_desc = kernels_->descs[i].scratchpad_desc();
  const auto scratch = torch::empty({static_cast<int64_t>(scratch_desc.get_size())}, torch::kUInt8);
  const std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory(desc(a, ta), engine, a.data_ptr())},
      {DNNL_ARG_WEIGHTS, dnnl::memory(desc(b, tb), engine, b.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory(desc(c, false), engine, c.data_ptr())},
      {DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_desc, engine, scratch.data_ptr())}};
  dnnl::stream stream(engine);
  kernels_->kernels[i].execute(stream, args);
  stream.wait();
  return c;
}

namespace {

// torch::nn::functional::linear's math with its three products through oneDNN.
struct OnednnLinearFunction : torch::autograd::Function<OnednnLinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x2d,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               std::shared_ptr<const OnednnMatmul> mm) {
    ctx->save_for_backward({x2d, weight});
    // The layer that called holds `mm` for longer than its graph lives: a plain pointer will do.
    ctx->saved_data["mm"] = reinterpret_cast<int64_t>(mm.get());
    return (*mm)(x2d, weight.t()).add_(bias);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x2d = saved[0];
    const auto& weight = saved[1];
    const auto& mm = *reinterpret_cast<const OnednnMatmul*>(ctx->saved_data["mm"].toInt());
    const auto dy = grads[0].contiguous();
    return {mm(dy, weight), mm(dy.t(), x2d), dy.sum(0), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            std::shared_ptr<const OnednnMatmul> mm) {
  auto shape = x.sizes().vec();
  shape.back() = weight.size(0);
  const auto y = OnednnLinearFunction::apply(x.reshape({-1, x.size(-1)}), weight, bias, std::move(mm));
  return y.view(shape);
}

}  // namespace emotune::kernels
