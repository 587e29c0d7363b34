// The oneDNN-backed pieces in a build without oneDNN (an upstream libtorch 2.x ships its oneDNN
// inside libtorch_cpu, with no usable headers). Load options never choose them there
// (checkpoint.cpp); a direct call says why it cannot run.
#include <stdexcept>

#include "kernels/onednn_matmul.h"
#include "kernels/packed_linear.h"

namespace emotune::kernels {

namespace {
[[noreturn]] void no_onednn(const char* what) {
  throw std::runtime_error(std::string(what) + ": this emotune has no oneDNN (a libtorch 2.x build)");
}
}  // namespace

bool built_with_onednn() { return false; }
bool cpu_runs_bf16() { return false; }
int int8_activation_levels() { return 127; }
std::string onednn_isa_name() { return "none"; }

struct PackedLinear::Kernel {};

PackedLinear::PackedLinear(const torch::Tensor&, const torch::Tensor&, Precision precision, Activation activation)
    : in_(0), out_(0), precision_(precision), activation_(activation) {
  no_onednn("packed inference layers");
}
torch::Tensor PackedLinear::forward(const torch::Tensor&) const { no_onednn("packed inference layers"); }
const char* PackedLinear::implementation() const { return "none"; }

struct OnednnMatmul::Kernels {};
OnednnMatmul::OnednnMatmul() { no_onednn("oneDNN training products"); }
OnednnMatmul::~OnednnMatmul() = default;
torch::Tensor OnednnMatmul::operator()(const torch::Tensor&, const torch::Tensor&) const {
  no_onednn("oneDNN training products");
}
const char* OnednnMatmul::implementation() const { return "none"; }

torch::Tensor onednn_linear(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                            std::shared_ptr<const OnednnMatmul>) {
  no_onednn("oneDNN training products");
}

}  // namespace emotune::kernels
