// The differentiable packed attention and the hashed dropout, against the same math in libtorch ops.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "expect_error.h"
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "kernels/attention_kernel.h"
#include "kernels/dropout.h"

namespace {

using emotune::kernels::DropoutMask;

struct Packed {
  torch::Tensor q, k, v, start, length;
  int64_t heads, head_dim;
};

// Sequences of the given lengths packed back to back, `heads` heads of `head_dim` each.
Packed random_packed(const std::vector<int64_t>& lengths, int64_t heads, int64_t head_dim, bool first_only) {
  const auto length = torch::tensor(lengths, torch::kInt64);
  const auto start = length.cumsum(0) - length;
  const int64_t tokens = length.sum().item<int64_t>(), dim = heads * head_dim;
  const int64_t queries = first_only ? static_cast<int64_t>(lengths.size()) : tokens;
  return {torch::randn({queries, dim}), torch::randn({tokens, dim}), torch::randn({tokens, dim}), start, length,
          heads, head_dim};
}

// softmax(q k^T / sqrt(d)) (times the dropout factors of `mask`, if any) v per sequence and head, in
// double precision libtorch ops; jobs are numbered head-major as the kernel numbers its weights.
// With `bias` [heads, seq, seq], bias[h, i, j] is added to the scores of query i and key j first.
torch::Tensor reference(const Packed& p, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        bool first_only, const DropoutMask* mask, const torch::Tensor& bias = {}) {
  const int64_t count = p.start.size(0);
  std::vector<std::vector<torch::Tensor>> blocks(static_cast<std::size_t>(count));
  int64_t offset = 0;
  for (int64_t h = 0; h < p.heads; ++h)
    for (int64_t s = 0; s < count; ++s) {
      const int64_t st = p.start[s].item<int64_t>(), len = p.length[s].item<int64_t>();
      const auto cols = torch::indexing::Slice(h * p.head_dim, (h + 1) * p.head_dim);
      const auto rows = torch::indexing::Slice(st, st + len);
      const auto qs = first_only ? q.index({torch::indexing::Slice(s, s + 1), cols}) : q.index({rows, cols});
      auto scores = qs.matmul(k.index({rows, cols}).t()) / std::sqrt(static_cast<double>(p.head_dim));
      if (bias.defined())
        scores = scores + bias[h].index({torch::indexing::Slice(0, first_only ? 1 : len), torch::indexing::Slice(0, len)});
      auto w = torch::softmax(scores, -1);
      if (mask) {
        auto f = torch::empty({w.numel()}, torch::kFloat64);
        for (int64_t i = 0; i < w.numel(); ++i) f[i] = mask->factor(static_cast<std::uint64_t>(offset + i));
        w = w * f.view(w.sizes());
      }
      offset += w.numel();
      blocks[static_cast<std::size_t>(s)].push_back(w.matmul(v.index({rows, cols})));
    }
  std::vector<torch::Tensor> per_sequence;
  for (auto& b : blocks) per_sequence.push_back(torch::cat(b, 1));
  return torch::cat(per_sequence, 0);
}

// The kernel's output and q, k, v gradients (for upstream gradient `up`) against the reference's.
void expect_matches_reference(const Packed& p, bool first_only, double dropout, std::uint64_t seed) {
  auto q = p.q.clone().requires_grad_(), k = p.k.clone().requires_grad_(), v = p.v.clone().requires_grad_();
  const auto up = torch::randn_like(p.q);
  torch::manual_seed(seed);
  const auto out = emotune::kernels::packed_attention_with_grad(q, k, v, p.start, p.length, p.heads, first_only, dropout);
  out.backward(up);

  torch::manual_seed(seed);  // the kernel drew its mask's seed first thing: draw the same one
  const auto mask = DropoutMask::draw(dropout > 0 ? dropout : 0.0);
  auto qd = p.q.to(torch::kFloat64).requires_grad_(), kd = p.k.to(torch::kFloat64).requires_grad_(),
       vd = p.v.to(torch::kFloat64).requires_grad_();
  const auto expected = reference(p, qd, kd, vd, first_only, dropout > 0 ? &mask : nullptr);
  expected.backward(up.to(torch::kFloat64));

  EXPECT_TRUE(torch::allclose(out.to(torch::kFloat64), expected, 1e-5, 1e-5)) << (out - expected).abs().max();
  EXPECT_TRUE(torch::allclose(q.grad().to(torch::kFloat64), qd.grad(), 1e-5, 1e-5)) << (q.grad() - qd.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(k.grad().to(torch::kFloat64), kd.grad(), 1e-5, 1e-5)) << (k.grad() - kd.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(v.grad().to(torch::kFloat64), vd.grad(), 1e-5, 1e-5)) << (v.grad() - vd.grad()).abs().max();
}

TEST(PackedAttention, ForwardAndGradientsEqualPerSequenceMath) {
  torch::manual_seed(1);
  const auto p = random_packed({5, 1, 17, 3, 64}, 3, 32, false);
  expect_matches_reference(p, false, 0.0, 11);
}

TEST(PackedAttention, FirstRowsOnlyEqualPerSequenceMath) {
  torch::manual_seed(2);
  const auto p = random_packed({4, 9, 1, 30}, 2, 64, true);
  expect_matches_reference(p, true, 0.0, 12);
}

TEST(PackedAttention, DropoutMasksComeFromTheGeneratorAndActInBothPasses) {
  torch::manual_seed(3);
  const auto p = random_packed({6, 13, 2, 40}, 4, 16, false);
  expect_matches_reference(p, false, 0.3, 13);
  const auto f = random_packed({6, 13, 2, 40}, 4, 16, true);
  expect_matches_reference(f, true, 0.3, 14);
}

// With a score bias (MPNet's relative positions): the output and the gradients of q, k, v and the bias
// (summed over sequences) equal the reference's; the inference kernel gives the same output.
void expect_biased_matches_reference(const Packed& p, bool first_only) {
  const int64_t seq = p.length.max().item<int64_t>() + 3;  // wider than the longest sequence, as a batch's grid
  const auto bias0 = torch::randn({p.heads, seq, seq});
  auto q = p.q.clone().requires_grad_(), k = p.k.clone().requires_grad_(), v = p.v.clone().requires_grad_();
  auto bias = bias0.clone().requires_grad_();
  const auto up = torch::randn_like(p.q);
  const auto out =
      emotune::kernels::packed_attention_with_grad(q, k, v, p.start, p.length, p.heads, first_only, 0.0, bias);
  out.backward(up);
  auto qd = p.q.to(torch::kFloat64).requires_grad_(), kd = p.k.to(torch::kFloat64).requires_grad_(),
       vd = p.v.to(torch::kFloat64).requires_grad_(), bd = bias0.to(torch::kFloat64).requires_grad_();
  const auto expected = reference(p, qd, kd, vd, first_only, nullptr, bd);
  expected.backward(up.to(torch::kFloat64));
  EXPECT_TRUE(torch::allclose(out.to(torch::kFloat64), expected, 1e-5, 1e-5)) << (out - expected).abs().max();
  EXPECT_TRUE(torch::allclose(q.grad().to(torch::kFloat64), qd.grad(), 1e-5, 1e-5)) << (q.grad() - qd.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(k.grad().to(torch::kFloat64), kd.grad(), 1e-5, 1e-5)) << (k.grad() - kd.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(v.grad().to(torch::kFloat64), vd.grad(), 1e-5, 1e-5)) << (v.grad() - vd.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(bias.grad().to(torch::kFloat64), bd.grad(), 1e-5, 1e-5))
      << (bias.grad() - bd.grad()).abs().max();
  EXPECT_GT(bias.grad().abs().sum().item<float>(), 0.0f);

  // The inference kernel, on the same rows; it reads the queries of every token, where first_only
  // gives one per sequence.
  auto plain = torch::empty_like(p.q);
  const auto st = p.start.contiguous(), ln = p.length.contiguous();
  auto q_rows = first_only ? torch::zeros_like(p.k).index_copy(0, st, p.q) : p.q.contiguous();
  emotune::kernels::packed_attention(
      q_rows.data_ptr<float>(), p.k.contiguous().data_ptr<float>(), p.v.contiguous().data_ptr<float>(),
      p.heads * p.head_dim, plain.data_ptr<float>(),
      {st.data_ptr<int64_t>(), ln.data_ptr<int64_t>(), st.size(0), first_only}, p.heads, p.head_dim,
      static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim))), {bias0.data_ptr<float>(), seq});
  EXPECT_TRUE(torch::allclose(plain.to(torch::kFloat64), expected, 1e-5, 1e-5)) << (plain - expected).abs().max();
}

TEST(PackedAttention, ScoreBiasActsInBothPassesAndGetsItsGradient) {
  torch::manual_seed(4);
  expect_biased_matches_reference(random_packed({5, 1, 17, 3, 30}, 3, 16, false), false);
  expect_biased_matches_reference(random_packed({4, 9, 1, 30}, 2, 32, true), true);
}

TEST(HashedDropout, DropsAboutPAndScalesTheRest) {
  const auto x = torch::ones({2000, 300}).requires_grad_();
  torch::manual_seed(5);
  const auto y = emotune::kernels::dropout(x, 0.25);
  const double dropped = (y == 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(dropped, 0.25, 0.005);
  EXPECT_TRUE(torch::all((y == 0) | ((y - 1.0f / 0.75f).abs() < 1e-6)).item<bool>());
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), y.detach()));  // the gradient goes through the same mask
}

TEST(HashedDropout, TheGeneratorDecidesTheMaskNotTheThreadCount) {
  const auto x = torch::randn({300, 768});
  const int threads = at::get_num_threads();
  torch::manual_seed(9);
  const auto a = emotune::kernels::dropout(x, 0.1);
  at::set_num_threads(1);
  torch::manual_seed(9);
  const auto b = emotune::kernels::dropout(x, 0.1);
  at::set_num_threads(threads);
  const auto c = emotune::kernels::dropout(x, 0.1);  // the generator moved on: another mask
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
}

TEST(HashedDropout, ModuleActsInTrainingModeOnly) {
  emotune::kernels::Dropout d(0.5);
  const auto x = torch::randn({64, 64});
  d->eval();
  EXPECT_TRUE(torch::equal(d(x), x));
  d->train();
  EXPECT_FALSE(torch::equal(d(x), x));
  emotune::kernels::Dropout all(1.0);
  EXPECT_EQ(all(x).abs().sum().item<float>(), 0.0f);
  EXPECT_THROW_MESSAGE(emotune::kernels::Dropout(1.5), std::invalid_argument, "probability must be in [0, 1");
}

}  // namespace
