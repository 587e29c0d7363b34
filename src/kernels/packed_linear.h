// The inference form of a linear layer, y = act(x W^T + b), run by one oneDNN matmul whose weights
// were reordered once into the kernel's own blocked layout. Float keeps the numbers (up to summation
// order) and runs short inputs ~2x faster than OpenBLAS, which repacks the weights on every call;
// bfloat16 rounds the weights once and the inputs per call, multiplies in bf16 and accumulates in
// float (half the weight bytes to read: the one-text latency is memory-bound); int8 quantises the
// weights per output channel once and the activations per call (dynamic int8).
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

namespace emotune::kernels {

enum class Precision { Float32, BFloat16, Int8 };
// --precision's names: "f32" (also "fp32", "" and --quantize's "none"), "bf16", "int8"; anything else throws.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

// Whether this emotune was built with oneDNN (the packed layers, oneDNN training products): builds on
// Debian's libtorch 1.13 are; builds on an upstream libtorch 2.x, which ships no usable oneDNN, are not.
bool built_with_onednn();
// Whether oneDNN has native bfloat16 kernels on this CPU (AVX512_BF16 or AMX), not emulated ones.
bool cpu_runs_bf16();
// oneDNN's instruction set on this CPU ("avx512_core_bf16", ...), or "none" in a build without oneDNN.
std::string onednn_isa_name();
// Dynamic int8 quantises activations to 0..255 where oneDNN's u8 x s8 products accumulate in 32 bits
// (VNNI, AMX), and to 0..127 on CPUs without VNNI, whose kernels add pairs of products in 16 bits and
// would saturate with full 8-bit inputs (2 * 255 * 127 > 32767; 11% worst-case error measured on a
// 768x3072 layer, against 2% with 7 bits; PyTorch's quantize_dynamic does the same there). Decided
// once per process from oneDNN's instruction set.
int int8_activation_levels();
enum class Activation { None, Gelu, Relu };  // applied to the output inside the kernel

class PackedLinear {
 public:
  // weight [out, in] and bias [out], float on the CPU; copied, so the caller may release them.
  PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias, Precision precision,
               Activation activation = Activation::None);

  // x [..., in] float -> [..., out]. Safe to call from several threads at once.
  torch::Tensor forward(const torch::Tensor& x) const;

  Precision precision() const { return precision_; }
  Activation activation() const { return activation_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // oneDNN's name for the kernel it chose ("gemm:jit"; "ref" would mean a slow reference loop).
  const char* implementation() const;

 private:
  struct Kernel;  // oneDNN's matmul and the weights in its layout (packed_linear.cpp)
  // operand: the input as the kernel reads it ([rows, in]: float, bf16 or uint8 with its int8
  // scale and zero point); y: [rows, out].
  void run_any_rows(const torch::Tensor& operand, float x_scale, int32_t x_zero, torch::Tensor& y) const;
  void run_fixed_rows(const torch::Tensor& operand, float x_scale, int32_t x_zero, torch::Tensor& y) const;
  int64_t in_, out_;
  Precision precision_;
  Activation activation_;
  std::shared_ptr<const Kernel> kernel_;
};

}  // namespace emotune::kernels
