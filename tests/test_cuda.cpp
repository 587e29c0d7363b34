// CUDA against the CPU, for every family: the same model's float32 logits (TF32 off), 20 training
// steps' losses, and how far bf16 products move the logits. ctest lists them only in builds whose
// libtorch has CUDA (tests/CMakeLists.txt); there they skip when no GPU is visible.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/classifier.h"
#include "train/objective.h"
#include "train/step.h"

#include "families.h"

namespace m = emotune::model;
namespace t = emotune::train;

namespace {

const std::vector<std::string> kFamilies = emotune::tests::test_families();

m::ModelConfig small_config(const std::string& model_type) {
  auto c = emotune::tests::small_config(
      model_type, {{"vocab_size", 120}, {"hidden", 64}, {"intermediate", 128}, {"heads", 4}, {"layers", 2},
                   {"positions", 40}, {"dropout", 0.0}});
  c.labels = {"a", "b", "c", "d", "e"};
  return c;
}

// A right-padded batch of uneven lengths; batch `k` of a fixed sequence.
t::MicroBatch batch(int64_t k, const m::ModelConfig& c) {
  torch::manual_seed(1000 + k);
  const int64_t rows = 6, longest = 17;
  auto ids = torch::randint(3, c.vocab_size, {rows, longest}, torch::kInt64);
  auto mask = torch::ones({rows, longest}, torch::kInt64);
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t length = 3 + (b * 5 + k) % (longest - 2);
    mask[b].slice(0, length).zero_();
    ids[b].slice(0, length).fill_(c.pad_token_id);
  }
  t::MicroBatch mb;
  mb.inputs.input_ids = ids;
  mb.inputs.attention_mask = mask;
  mb.inputs.real_tokens = static_cast<std::size_t>(mask.sum().item<int64_t>());
  mb.targets = (torch::rand({rows, static_cast<int64_t>(c.labels.size())}) < 0.3).to(torch::kFloat32);
  mb.first_label = mb.targets.argmax(1);
  return mb;
}

// A model of `c` with the weights `seed` draws, on `device`.
m::SequenceClassifier model_on(const m::ModelConfig& c, uint64_t seed, const torch::Device& device) {
  torch::manual_seed(seed);
  auto model = m::make_classifier(c);
  model->init_weights(0.2);
  model->to(device);
  return model;
}

double relative_gap(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs() / want.abs().clamp_min(1.0)).max().item<double>();
}

class CudaFamily : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

TEST_P(CudaFamily, Float32LogitsMatchTheCpu) {
  const auto c = small_config(GetParam());
  auto cpu = model_on(c, 3, torch::kCPU), gpu = model_on(c, 3, torch::kCUDA);
  cpu->eval();
  gpu->eval();
  torch::NoGradGuard no_grad;
  for (int64_t k = 0; k < 3; ++k) {
    const auto mb = batch(k, c);
    const auto want = cpu->forward(mb.inputs.input_ids, mb.inputs.attention_mask);
    const auto got =
        gpu->forward(mb.inputs.input_ids.to(torch::kCUDA), mb.inputs.attention_mask.to(torch::kCUDA)).to(torch::kCPU);
    EXPECT_LE(relative_gap(got, want), 1e-4) << "batch " << k;
  }
}

TEST_P(CudaFamily, TwentyTrainingStepsMatchTheCpu) {
  const auto c = small_config(GetParam());
  auto cpu_model = model_on(c, 5, torch::kCPU), gpu_model = model_on(c, 5, torch::kCUDA);
  t::StepRunner cpu(cpu_model, t::Loss{}, 0.01, 1.0, torch::kCPU);
  t::StepRunner gpu(gpu_model, t::Loss{}, 0.01, 1.0, torch::kCUDA);
  for (int64_t step = 0; step < 20; ++step) {
    const auto mb = batch(step, c);
    double cpu_norm = 0, gpu_norm = 0;
    const double want = cpu.step({mb}, 1e-3, cpu_norm);
    const double got = gpu.step({mb}, 1e-3, gpu_norm);
    EXPECT_LE(std::abs(got - want) / std::max(1e-12, std::abs(want)), 1e-4) << "step " << step;
    EXPECT_LE(std::abs(gpu_norm - cpu_norm) / std::max(1e-12, cpu_norm), 1e-3) << "gradient norm, step " << step;
  }
  // The weights themselves, not only the losses: a wrong update that happens to leave the loss
  // close would show here.
  const auto gpu_params = gpu_model->named_parameters();
  for (const auto& p : cpu_model->named_parameters()) {
    const auto theirs = gpu_params[p.key()].to(torch::kCPU);
    const double scale = std::max(1.0, p.value().abs().max().item<double>());
    EXPECT_LE((theirs - p.value()).abs().max().item<double>(), 1e-4 * scale) << p.key();
  }
}

// bf16 products round every operand to 8 significant bits: close to float32, not equal. The gap is
// printed so that the device run records it.
TEST_P(CudaFamily, Bf16ProductsStayCloseToFloat32) {
  const auto c = small_config(GetParam());
  auto f32 = model_on(c, 7, torch::kCUDA), bf16 = model_on(c, 7, torch::kCUDA);
  bf16->use_products(m::Products::Bf16);
  f32->eval();
  bf16->eval();
  torch::NoGradGuard no_grad;
  const auto mb = batch(0, c);
  const auto ids = mb.inputs.input_ids.to(torch::kCUDA), mask = mb.inputs.attention_mask.to(torch::kCUDA);
  const auto want = f32->forward(ids, mask), got = bf16->forward(ids, mask);
  const double gap = (got - want).abs().max().item<double>(), scale = want.abs().max().item<double>();
  std::printf("[ bf16     ] %s: largest logit gap %.3g (largest logit %.3g)\n", GetParam().c_str(), gap, scale);
  EXPECT_GT(gap, 0.0);
  EXPECT_LT(gap, 0.05 * std::max(1.0, scale));
}

INSTANTIATE_TEST_SUITE_P(Families, CudaFamily, ::testing::ValuesIn(kFamilies));

}  // namespace
