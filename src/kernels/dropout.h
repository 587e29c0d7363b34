// Dropout whose keep-or-drop draws come from a counter-based hash of (seed, element index), the seed
// drawn from libtorch's CPU generator: the masks are made in parallel, are the same whatever the
// thread count, and the generator's state (saved with checkpoints) still decides every one of them.
// libtorch's own CPU bernoulli draws one element at a time on one thread.
#pragma once

#include <torch/nn.h>

#include <cstdint>

namespace emotune::kernels {

// One dropout mask: element i is kept (scaled by 1 / (1 - p)) with probability 1 - p.
struct DropoutMask {
  std::uint64_t seed = 0;
  std::uint32_t threshold = 0;  // element i is dropped when its 32-bit draw is below this
  float scale = 1.0f;

  // A fresh mask: its seed is the next draw of libtorch's default CPU generator.
  static DropoutMask draw(double p);
  // Kept with an autograd node, so that backward draws the same mask again instead of storing it.
  void save(torch::autograd::AutogradContext* ctx) const;
  static DropoutMask saved(torch::autograd::AutogradContext* ctx);
  // 0 or scale: what element `index` of a tensor is multiplied by.
  float factor(std::uint64_t index) const {
    std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return static_cast<std::uint32_t>((z ^ (z >> 31)) >> 32) < threshold ? 0.0f : scale;
  }
};

// x with each element zeroed with probability p and the rest scaled by 1 / (1 - p); differentiable.
// Float32 CPU tensors take the hashed masks; other tensors libtorch's dropout.
torch::Tensor dropout(const torch::Tensor& x, double p);

// The module Hugging Face's models call `dropout`: active in training mode only.
class DropoutImpl : public torch::nn::Cloneable<DropoutImpl> {
 public:
  explicit DropoutImpl(double p = 0.5);
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& x);
  // The probability that applies now: p in training mode, 0 in evaluation mode.
  double active_p() const { return is_training() ? p : 0.0; }

  double p;
};
TORCH_MODULE(Dropout);

}  // namespace emotune::kernels
