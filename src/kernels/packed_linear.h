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
  int64_t in_, out_;
  Precision precision_;
  Activation activation_;
  std::shared_ptr<const Kernel> kernel_;
};

}  // namespace emotune::kernels
