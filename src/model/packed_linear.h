// The inference form of a linear layer, y = act(x W^T + b), run by one oneDNN matmul whose weights
// were reordered once into the kernel's own blocked layout. Float keeps the numbers (up to summation
// order) and runs short inputs ~2x faster than OpenBLAS, which repacks the weights on every call;
// bfloat16 rounds the weights once and the inputs per call, multiplies in bf16 and accumulates in
// float (half the weight bytes to read: the one-text latency is memory-bound); int8 quantises the
// weights per output channel once and the activations per call (dynamic int8).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace emotune::model {

enum class Precision { Float32, BFloat16, Int8 };
// --precision's names: "f32" (also "" and --quantize's "none"), "bf16", "int8"; anything else throws.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

// Whether oneDNN has native bfloat16 kernels on this CPU (AVX512_BF16 or AMX), not emulated ones.
bool cpu_runs_bf16();
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
  int64_t in_, out_;
  Precision precision_;
  Activation activation_;
  dnnl::engine engine_;
  dnnl::matmul::primitive_desc desc_;
  dnnl::matmul matmul_;
  dnnl::memory weights_;
  std::vector<float> bias_;
  std::vector<float> weight_scales_;  // int8: one per output channel (max |w| / 127)
  std::vector<float> weight_sums_;    // int8: sum of each output channel's int8 weights
};

}  // namespace emotune::model
