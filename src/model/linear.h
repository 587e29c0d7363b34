// A linear layer with torch::nn::Linear's parameters (weight [out, in], bias [out]), initialisation
// and math, which can switch to dynamic int8 for inference: the weight quantised once per output
// channel, each batch of activations quantised on the fly (oneDNN's int8 kernels).
#pragma once

#include <ATen/native/quantized/PackedParams.h>
#include <torch/nn.h>

namespace emotune::model {

struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in_features, int64_t out_features);
  // A layer holding these tensors (no random initialisation).
  LinearImpl(torch::Tensor weight, torch::Tensor bias);
  torch::Tensor forward(const torch::Tensor& x);

  // Replaces the float weight by its int8 form (the float storage is released). Inference only.
  void quantize_int8();
  bool quantized() const { return static_cast<bool>(packed_); }

  torch::Tensor weight, bias;

 private:
  c10::intrusive_ptr<LinearPackedParamsBase> packed_;
};
TORCH_MODULE(Linear);

}  // namespace emotune::model
