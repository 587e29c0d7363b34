// Packed (oneDNN) linear layers against torch's own linear: float equal up to summation order, int8
// close, activations fused, any row count, several threads at once.
#include <gtest/gtest.h>

#include "expect_error.h"
#include <torch/torch.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "model/checkpoint.h"
#include "kernels/linear.h"
#include "kernels/onednn_matmul.h"
#include "kernels/packed_linear.h"

namespace {

using emotune::kernels::Activation;
using emotune::kernels::PackedLinear;
using emotune::kernels::Precision;

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
    // Exact kernels for short inputs, padded ones above 32 rows, chunks of 256 rows beyond.
    for (int64_t rows : {1, 7, 33, 200, 600}) {
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
  EXPECT_THROW_MESSAGE(packed.forward(torch::randn({2, 95})), std::invalid_argument, "expected float CPU input with");
  EXPECT_THROW_MESSAGE(packed.forward(torch::randn({2, 96}, torch::kFloat64)), std::invalid_argument,
                       "expected float CPU input with");
}

TEST(PackedLinear, AVX512CpusGetOneDNNsFixedRowKernels) {
  if (emotune::kernels::onednn_isa_name().rfind("avx512", 0) != 0) GTEST_SKIP() << "no AVX-512: the generic GEMM serves";
  const auto layer = random_layer(768, 256);
  for (auto precision : {Precision::Float32, Precision::Int8}) {
    // int8 brgemm needs VNNI (or AMX); without it the generic GEMM serves int8.
    if (precision == Precision::Int8 && emotune::kernels::int8_activation_levels() != 255) continue;
    const PackedLinear packed(layer.weight, layer.bias, precision, Activation::Gelu);
    // brgemm, not the generic GEMM that repacks the weights per call (2x slower for one text).
    EXPECT_EQ(std::string(packed.implementation()).rfind("brg", 0), 0u) << packed.implementation();
  }
}

TEST(PackedLinear, BFloat16IsFloatOnRoundedOperands) {
  if (!emotune::kernels::cpu_runs_bf16()) GTEST_SKIP() << "this CPU has no AVX512_BF16 or AMX";
  const auto layer = random_layer(768, 256);
  auto rounded = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat32); };
  const Layer bf16_layer{rounded(layer.weight), layer.bias};
  for (auto act : {Activation::None, Activation::Gelu}) {
    const PackedLinear packed(layer.weight, layer.bias, Precision::BFloat16, act);
    EXPECT_EQ(std::string(packed.implementation()).find("ref"), std::string::npos) << packed.implementation();
    for (int64_t rows : {1, 9, 40}) {
      const auto x = torch::randn({rows, 768});
      const auto got = packed.forward(x);
      // A product of two bf16 numbers is exact in float: only the summation order differs.
      const auto want = reference(bf16_layer, rounded(x), act);
      EXPECT_LT(max_abs(got - want), 1e-5 * (1.0 + max_abs(want))) << "rows " << rows;
      EXPECT_GT(max_abs(got - reference(layer, x, act)), 0.0);  // and it is not the float product
    }
  }
}

TEST(OnednnProducts, MatmulEqualsTorchForEveryLayout) {
  const emotune::kernels::OnednnMatmul mm;
  EXPECT_EQ(std::string(mm.implementation()).find("ref"), std::string::npos) << mm.implementation();
  torch::manual_seed(5);
  for (auto [m, k, n] : {std::array<int64_t, 3>{1, 1, 1}, {7, 33, 5}, {64, 384, 1536}, {3, 0, 4}, {0, 8, 2}}) {
    const auto a = torch::randn({m, k}), b = torch::randn({k, n});
    const auto want = torch::matmul(a, b);
    for (const auto& x : {a, a.t().contiguous().t()})
      for (const auto& y : {b, b.t().contiguous().t(), b.contiguous().t().contiguous().t()}) {
        const auto got = mm(x, y);
        ASSERT_EQ(got.sizes(), want.sizes());
        if (want.numel()) EXPECT_LT(max_abs(got - want), 1e-5 * (1.0 + max_abs(want))) << m << "x" << k << "x" << n;
      }
  }
  const auto strided = torch::randn({6, 10}).slice(1, 0, 10, 2);  // neither layout: copied first
  EXPECT_LT(max_abs(mm(strided, torch::eye(5)) - strided), 1e-6);
  EXPECT_THROW(mm(torch::randn({2, 3}), torch::randn({4, 2})), std::invalid_argument);
}

TEST(OnednnProducts, LinearLayerTrainsLikeTorchLinear) {
  torch::manual_seed(4);
  emotune::kernels::Linear plain(48, 24), onednn(48, 24);
  {
    torch::NoGradGuard no_grad;
    onednn->weight.copy_(plain->weight);
    onednn->bias.copy_(plain->bias);
  }
  onednn->use_products(emotune::kernels::Products::OnednnF32, std::make_shared<const emotune::kernels::OnednnMatmul>());
  const auto x = torch::randn({3, 5, 48});
  const auto x1 = x.clone().requires_grad_(), x2 = x.clone().requires_grad_();
  const auto upstream = torch::randn({3, 5, 24});
  const auto y1 = plain->forward(x1), y2 = onednn->forward(x2);
  ASSERT_EQ(y2.sizes(), y1.sizes());
  EXPECT_LT(max_abs(y2 - y1), 1e-5);
  y1.backward(upstream);
  y2.backward(upstream);
  EXPECT_LT(max_abs(x2.grad() - x1.grad()), 1e-5);
  EXPECT_LT(max_abs(onednn->weight.grad() - plain->weight.grad()), 1e-4);
  EXPECT_LT(max_abs(onednn->bias.grad() - plain->bias.grad()), 1e-5);
}

// Mixed-precision training: forward and backward products in bfloat16 (rounded operands, float
// accumulation, result rounded to bfloat16), the weight and its gradient in float32.
TEST(Bf16Products, TrainLikeFloatMathOnRoundedOperands) {
  if (!emotune::kernels::cpu_runs_bf16()) GTEST_SKIP() << "this CPU has no AVX512_BF16 or AMX";
  auto rounded = [](const torch::Tensor& t) { return t.detach().to(torch::kBFloat16).to(torch::kFloat32); };
  torch::manual_seed(3);
  emotune::kernels::Linear lin(384, 96);
  lin->use_products(emotune::kernels::Products::Bf16);
  const auto x = torch::randn({2, 7, 384}).requires_grad_();
  const auto upstream = torch::randn({2, 7, 96});
  const auto y = lin->forward(x);
  y.backward(upstream);
  ASSERT_EQ(y.scalar_type(), torch::kFloat32);
  ASSERT_EQ(lin->weight.grad().scalar_type(), torch::kFloat32);

  // Each product is rounded to bfloat16 once: within half a bfloat16 step (2^-8 relative) of float
  // math on the rounded operands, up to summation order.
  auto within_rounding = [](const torch::Tensor& got, const torch::Tensor& exact) {
    return ((got - exact).abs() <= exact.abs() * std::ldexp(1.0, -8) + 1e-4).all().item<bool>();
  };
  const auto product = torch::matmul(rounded(x), rounded(lin->weight).t());
  EXPECT_TRUE(within_rounding(y - lin->bias, product));
  EXPECT_TRUE(within_rounding(x.grad(), torch::matmul(rounded(upstream), rounded(lin->weight))));
  const auto weight_grad = torch::matmul(rounded(upstream).reshape({-1, 96}).t(), rounded(x).reshape({-1, 384}));
  EXPECT_TRUE(within_rounding(lin->weight.grad(), weight_grad));
  EXPECT_LT(max_abs(lin->bias.grad() - upstream.sum(std::vector<int64_t>{0, 1})), 1e-4);  // the bias stays float32 throughout
  // ... and it is not the float32 layer.
  EXPECT_GT(max_abs(y - torch::nn::functional::linear(x, lin->weight, lin->bias)), 0.0);
}

TEST(PackedLinear, Int8IsCloseToFloatButNotEqual) {
  const auto layer = random_layer(768, 256);
  for (auto act : {Activation::None, Activation::Gelu}) {
    const PackedLinear packed(layer.weight, layer.bias, Precision::Int8, act);
    EXPECT_EQ(std::string(packed.implementation()).find("ref"), std::string::npos) << packed.implementation();
    // Activations like a LayerNorm's output, and all-positive ones (after GELU) that need the zero point.
    for (const auto& x : {torch::randn({40, 768}), torch::rand({9, 768}) * 3.0, torch::randn({300, 768})}) {
      const auto want = reference(layer, x, act), got = packed.forward(x);
      const double err = max_abs(got - want), spread = max_abs(want - want.mean());
      EXPECT_GT(err, 0.0);
      // Full 8-bit activations (VNNI, AMX) halve the activations' rounding step.
      const double bound = emotune::kernels::int8_activation_levels() == 255 ? 0.015 : 0.03;
      EXPECT_LT(err, bound * spread) << "int8 error " << err << " against spread " << spread;
    }
  }
  // All-zero input: the output is the bias exactly.
  const PackedLinear packed(layer.weight, layer.bias, Precision::Int8);
  EXPECT_TRUE(torch::allclose(packed.forward(torch::zeros({2, 768})), layer.bias.expand({2, 256}), 1e-5, 1e-6));
}

TEST(PackedLinear, ConcurrentCallsGiveTheSameResults) {
  const auto layer = random_layer(128, 384);
  for (auto precision : {Precision::Float32, Precision::BFloat16, Precision::Int8}) {
    if (precision == Precision::BFloat16 && !emotune::kernels::cpu_runs_bf16()) continue;
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
  emotune::kernels::Linear lin(32, 16);
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
  EXPECT_THROW_MESSAGE(lin->pack(Precision::Int8), std::logic_error, "packed twice");
}

// load_model_dir with a precision packs each block while loading (the float encoder is never whole):
// the answers must be those of the plain model.
TEST(PackedLoad, PacksWhileLoadingAndAnswersLikeThePlainModel) {
  namespace fs = std::filesystem;
  namespace m = emotune::model;
  const fs::path dir = fs::temp_directory_path() / ("emotune_packed_load_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream vocab(dir / "vocab.txt");
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "f", "g"}) vocab << t << "\n";
  }
  m::ModelConfig c;
  c.vocab_size = 12;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_heads = 4;
  c.num_layers = 3;
  c.max_position_embeddings = 16;
  c.labels = {"x", "y", "z"};
  auto original = m::init_classifier(c, 11);
  m::save_model_files(dir, *original, *emotune::text::load_tokenizer(dir));

  const auto ids = torch::tensor({2, 5, 6, 7, 3, 2, 8, 3, 0, 0}, torch::kInt64).view({2, 5});
  const auto mask = (ids != 0).to(torch::kInt64);
  auto logits = [&](const m::LoadOptions& o) {
    auto bundle = m::load_model_dir(dir, o);
    torch::InferenceMode inference;
    bundle.model->eval();
    return std::make_pair(bundle.model->forward(ids, mask),
                          bundle.model->named_parameters()["distilbert.transformer.layer.2.ffn.lin1.weight"].numel());
  };
  const auto [plain, plain_size] = logits({});
  m::LoadOptions f32, int8;
  f32.pack = m::Precision::Float32;
  int8.pack = m::Precision::Int8;
  const auto [packed, packed_size] = logits(f32);
  const auto [quantized, quantized_size] = logits(int8);
  EXPECT_EQ(plain_size, 32 * 64);
  EXPECT_EQ(packed_size, 0) << "float weights released after packing";
  EXPECT_EQ(quantized_size, 0);
  EXPECT_TRUE(torch::allclose(packed, plain, 1e-5, 1e-6)) << packed << plain;
  EXPECT_LT(max_abs(quantized - plain), 0.05 * max_abs(plain));
  fs::remove_all(dir);
}

}  // namespace
