// Packed (oneDNN) linear layers against torch's own linear: float equal up to summation order, int8
// close, activations fused, any row count, several threads at once.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <thread>

#include "model/linear.h"
#include "model/packed_linear.h"

namespace {

using emotune::model::Activation;
using emotune::model::PackedLinear;
using emotune::model::Precision;

struct Layer {
  torch::Tensor weight, bias;
};

Layer random_layer(int64_t in, int64_t out) {
  torch::manual_seed(7);
  // A bias far from zero, so a bias applied before or after the int8 rescaling would show.
  return {torch::randn({out, in}) * 0.05, torch::randn({out}) + 2.0};
}

torch::Tensor reference(const Layer& l, const torch::Tensor& x, Activation a) {
  auto y = torch::nn::functional::linear(x, l.weight, l.bias);
  if (a == Activation::Gelu) return torch::gelu(y);
  if (a == Activation::Relu) return torch::relu(y);
  return y;
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

TEST(PackedLinear, Float32EqualsTorchLinearForAnyRowCount) {
  const auto layer = random_layer(96, 80);
  for (auto act : {Activation::None, Activation::Gelu, Activation::Relu}) {
    const PackedLinear packed(layer.weight, layer.bias, Precision::Float32, act);
    EXPECT_EQ(std::string(packed.implementation()).find("ref"), std::string::npos) << packed.implementation();
    for (int64_t rows : {1, 7, 33, 200}) {
      const auto x = torch::randn({rows, 96});
      const auto want = reference(layer, x, act), got = packed.forward(x);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_LT(max_abs(got - want), 1e-5 * (1.0 + max_abs(want))) << "rows " << rows;
    }
  }
  // Leading dimensions are kept; non-contiguous input is read correctly; zero rows give zero rows.
  const PackedLinear packed(layer.weight, layer.bias, Precision::Float32);
  const auto x = torch::randn({3, 96, 5}).transpose(1, 2);  // [3, 5, 96], not contiguous
  EXPECT_LT(max_abs(packed.forward(x) - reference(layer, x, Activation::None)), 1e-4);
  EXPECT_EQ(packed.forward(torch::empty({0, 96})).sizes(), (std::vector<int64_t>{0, 80}));
  EXPECT_THROW(packed.forward(torch::randn({2, 95})), std::invalid_argument);
  EXPECT_THROW(packed.forward(torch::randn({2, 96}, torch::kFloat64)), std::invalid_argument);
}

TEST(PackedLinear, Int8IsCloseToFloatButNotEqual) {
  const auto layer = random_layer(768, 256);
  for (auto act : {Activation::None, Activation::Gelu}) {
    const PackedLinear packed(layer.weight, layer.bias, Precision::Int8, act);
    EXPECT_EQ(std::string(packed.implementation()).find("ref"), std::string::npos) << packed.implementation();
    // Activations like a LayerNorm's output, and all-positive ones (after GELU) that need the zero point.
    for (const auto& x : {torch::randn({40, 768}), torch::rand({9, 768}) * 3.0}) {
      const auto want = reference(layer, x, act), got = packed.forward(x);
      const double err = max_abs(got - want), spread = max_abs(want - want.mean());
      EXPECT_GT(err, 0.0);
      EXPECT_LT(err, 0.03 * spread) << "int8 error " << err << " against spread " << spread;
    }
  }
  // All-zero input: the output is the bias exactly.
  const PackedLinear packed(layer.weight, layer.bias, Precision::Int8);
  EXPECT_TRUE(torch::allclose(packed.forward(torch::zeros({2, 768})), layer.bias.expand({2, 256}), 1e-5, 1e-6));
}

TEST(PackedLinear, ConcurrentCallsGiveTheSameResults) {
  const auto layer = random_layer(128, 384);
  for (auto precision : {Precision::Float32, Precision::Int8}) {
    const PackedLinear packed(layer.weight, layer.bias, precision);
    std::vector<torch::Tensor> inputs, alone(4), together(4);
    for (int i = 0; i < 4; ++i) inputs.push_back(torch::randn({17 + 10 * i, 128}));
    for (int i = 0; i < 4; ++i) alone[i] = packed.forward(inputs[i]);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
      threads.emplace_back([&, i] {
        for (int r = 0; r < 20; ++r) together[i] = packed.forward(inputs[i]);
      });
    for (auto& t : threads) t.join();
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(alone[i], together[i])) << "input " << i;
  }
}

TEST(PackedLinear, LinearLayerReleasesItsPlainWeights) {
  emotune::model::Linear lin(32, 16);
  const auto x = torch::randn({5, 32});
  torch::Tensor want;
  {
    torch::NoGradGuard no_grad;
    want = lin(x);
  }
  lin->pack(Precision::Float32);
  EXPECT_EQ(lin->weight.numel(), 0);
  EXPECT_EQ(lin->bias.numel(), 0);
  EXPECT_TRUE(torch::allclose(lin(x), want, 1e-5, 1e-6));
  EXPECT_THROW(lin->pack(Precision::Int8), std::logic_error);
}

}  // namespace
