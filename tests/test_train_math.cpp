// The fused AdamW pass against torch.optim.AdamW's op-by-op formula, the packed (padding-free)
// forward against the same model run one sequence at a time, and the last block computed for the
// [CLS] rows only against the whole block.
#include <gtest/gtest.h>

#include "expect_error.h"
#include <torch/torch.h>

#include <functional>

#include "model/bert.h"
#include "model/distilbert.h"
#include "train/optimizer.h"

#include "families.h"

namespace {

using emotune::train::AdamW;
using emotune::train::AdamWOptions;

TEST(AdamW, FusedPassEqualsOpByOpFormula) {
  torch::manual_seed(3);
  const double lr = 3e-3, wd = 0.01, max_norm = 0.5;
  std::vector<torch::Tensor> params{torch::randn({37, 5}), torch::randn({70001})};
  std::vector<torch::Tensor> ref, m, v;
  for (auto& p : params) {
    ref.push_back(p.clone());
    m.push_back(torch::zeros_like(p));
    v.push_back(torch::zeros_like(p));
  }
  AdamWOptions o;
  o.weight_decay = wd;
  AdamW opt(params, {true, false}, o);
  for (int t = 1; t <= 4; ++t) {
    std::vector<torch::Tensor> grads{torch::randn({37, 5}) * 3, torch::randn({70001})};
    for (std::size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i].clone();
    const double norm = emotune::train::grad_norm(params);
    const double norm_ref = torch::stack({grads[0].norm(2), grads[1].norm(2)}).norm(2).item<double>();
    EXPECT_NEAR(norm, norm_ref, 1e-4 * norm_ref);
    const double coef = emotune::train::clip_coefficient(norm, max_norm);
    // torch.nn.utils.clip_grad_norm_'s coefficient, computed here: max_norm / (total norm + 1e-6), at most 1.
    const double coef_ref = std::min(1.0, max_norm / (norm_ref + 1e-6));
    EXPECT_LT(coef_ref, 1.0);  // the clipping binds
    EXPECT_NEAR(coef, coef_ref, 1e-6 * coef_ref);
    opt.step(lr, coef);
    // torch.optim.AdamW, single-tensor form, after clip_grad_norm_ scaled the gradients.
    const double b1 = 1 - std::pow(0.9, t), b2 = std::sqrt(1 - std::pow(0.999, t));
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto g = grads[i] * coef_ref;
      if (i == 0) ref[i].mul_(1 - lr * wd);
      m[i].mul_(0.9).add_(g, 0.1);
      v[i].mul_(0.999).addcmul_(g, g, 0.001);
      ref[i].addcdiv_(m[i], (v[i].sqrt() / b2).add_(1e-8), -lr / b1);
      EXPECT_TRUE(torch::allclose(params[i], ref[i], 1e-6, 1e-7)) << "tensor " << i << " step " << t;
      EXPECT_TRUE(torch::allclose(opt.exp_avg()[i], m[i], 1e-6, 1e-9));
      EXPECT_TRUE(torch::allclose(opt.exp_avg_sq()[i], v[i], 1e-6, 1e-12));
    }
  }
}

// The same checks for every model family: the encoder's forward (with or without the last block
// for position 0 only), and the name of block i's first FFN weight.
// The encoder of any family, through the classifier's interface; block i's first FFN weight is the
// block's [intermediate, hidden] matrix, whatever the family calls it.
struct Encoder {
  emotune::model::SequenceClassifier model;
  torch::Tensor forward(const torch::Tensor& ids, const emotune::model::TokenLayout& l, bool first_only) const {
    return model->encode(ids, l, first_only);
  }
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& p : model->named_parameters())
      if (p.key().starts_with(model->base_model_prefix() + ".")) out.push_back(p.value());
    return out;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& p : model->named_parameters())
      if (p.key().starts_with(model->base_model_prefix() + ".")) out.push_back(p.key());
    return out;
  }
  // (Of a model whose float weights are still there.)
  std::string ffn_in_name(int i) const {
    const auto prefix = model->block_prefix() + std::to_string(i) + ".";
    const auto& c = model->config;
    for (const auto& p : model->named_parameters())
      if (p.key().starts_with(prefix) && p.key().ends_with(".weight") && p.value().dim() == 2 &&
          p.value().size(0) == c.intermediate_size && p.value().size(1) == c.hidden_size)
        return p.key();
    return "";
  }
  torch::Tensor parameter(const std::string& name) const { return model->named_parameters()[name]; }
};

Encoder encoder_of(const emotune::model::SequenceClassifier& model) { return {model}; }

emotune::model::ModelConfig tiny_config(const std::string& model_type) {
  auto c = emotune::tests::small_config(model_type, {{"dropout", 0.0}});
  if (model_type == "bert") c.layer_norm_eps = 1e-7;  // not DistilBERT's fixed 1e-12: the config's value must be used
  return c;
}

class PackedForward : public ::testing::TestWithParam<std::string> {};

TEST_P(PackedForward, PaddedBatchEqualsEachSequenceAlone) {
  torch::manual_seed(5);
  auto c = tiny_config(GetParam());
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_heads = 2;
  c.num_layers = 2;
  c.max_position_embeddings = 16;
  c.labels = {"a", "b", "c"};
  auto model = emotune::model::make_classifier(c);
  model->init_weights(0.5);
  model->eval();
  torch::NoGradGuard no_grad;
  const std::vector<std::vector<int64_t>> seqs{{2, 7, 9, 3}, {2, 11, 3}, {2, 5, 6, 8, 12, 13, 3}, {2, 3}};
  const int64_t L = 7;
  auto ids = torch::zeros({4, L}, torch::kInt64), mask = torch::zeros({4, L}, torch::kInt64);
  for (int64_t b = 0; b < 4; ++b)
    for (std::size_t j = 0; j < seqs[b].size(); ++j) {
      ids[b][static_cast<int64_t>(j)] = seqs[b][j];
      mask[b][static_cast<int64_t>(j)] = 1;
    }
  const auto batched = model->forward(ids, mask);
  for (int64_t b = 0; b < 4; ++b) {
    const auto alone = torch::tensor(seqs[b]).unsqueeze(0);
    const auto logits = model->forward(alone, torch::ones_like(alone));
    EXPECT_TRUE(torch::allclose(batched[b], logits[0], 1e-5, 1e-6)) << "sequence " << b;
  }
  // With autograd on, attention runs as torch ops over the padded grid; inference uses the packed
  // kernel. Both must give the same logits.
  {
    torch::GradMode::set_enabled(true);
    const auto graph = model->forward(ids, mask);
    torch::GradMode::set_enabled(false);
    EXPECT_TRUE(graph.requires_grad());
    EXPECT_TRUE(torch::allclose(graph.detach(), batched, 1e-5, 1e-6));
  }
  // Dynamic int8 (oneDNN builds): close to float (per-channel weights, per-batch activations), not equal.
  if (emotune::kernels::built_with_onednn()) {
    auto quantized = emotune::model::make_classifier(c);
    for (std::size_t i = 0; i < model->parameters().size(); ++i) quantized->parameters()[i].copy_(model->parameters()[i]);
    quantized->eval();
    quantized->pack_for_inference(emotune::kernels::Precision::Int8);
    // Random weights of std 0.5 make int8 rounding show: within a quarter of the logits' scale here
    // (RoBERTa's and MPNet's dense + tanh head amplifies it most), while wrong weights or a lost
    // activation would miss by the whole scale. Real fine-tuned models: bench/int8_agreement.py.
    const auto q = quantized->forward(ids, mask);
    const double err = (q - batched).abs().max().item<double>(), scale = batched.abs().max().item<double>();
    EXPECT_GT(err, 0.0);
    EXPECT_LT(err, 0.25 * scale) << "int8 logits drift " << err << " of " << scale;
    EXPECT_EQ(encoder_of(quantized).parameter(encoder_of(model).ffn_in_name(0)).numel(), 0)
        << "the float weight is released";
  }
  // The classifier reads position 0, so a batch whose first position is padding is refused.
  mask[1][0] = 0;
  EXPECT_THROW_MESSAGE(model->forward(ids, mask), c10::Error, "position 0 of every sequence must be a token");
}

// The classifier reads position 0 only, so the last block runs for those rows alone: same hidden
// states there, and the same gradients for every parameter, as computing the block for every token.
TEST_P(PackedForward, LastBlockForFirstRowsOnlyEqualsTheWholeBlock) {
  torch::manual_seed(7);
  auto c = tiny_config(GetParam());
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_heads = 4;
  c.num_layers = 3;
  c.max_position_embeddings = 12;
  c.labels = {"a", "b"};
  auto model = emotune::model::make_classifier(c);
  model->init_weights(0.5);
  model->eval();
  auto ids = torch::randint(4, 40, {3, 6}, torch::kInt64);
  auto mask = torch::ones({3, 6}, torch::kInt64);
  mask[0].slice(0, 4).zero_();  // lengths 4, 6, 2
  mask[2].slice(0, 2).zero_();
  const emotune::model::TokenLayout layout(mask);
  const auto encoder = encoder_of(model);
  auto gradients = [&](bool first_only) {
    model->zero_grad();
    auto h = encoder.forward(ids, layout, first_only);
    if (!first_only) h = h.index_select(0, layout.first);
    EXPECT_EQ(h.size(0), 3);
    (h * torch::linspace(-1, 1, h.numel()).view_as(h)).sum().backward();  // unequal weights per output
    std::vector<torch::Tensor> g;
    for (const auto& p : encoder.parameters())
      g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));  // BERT's pooler: unused here
    return std::make_pair(h.detach(), g);
  };
  const auto [whole, whole_grads] = gradients(false);
  const auto [first, first_grads] = gradients(true);
  EXPECT_TRUE(torch::allclose(first, whole, 1e-5, 1e-6));
  const auto names = encoder.names();
  for (std::size_t i = 0; i < whole_grads.size(); ++i)
    EXPECT_TRUE(torch::allclose(first_grads[i], whole_grads[i], 1e-4, 1e-6)) << names[i];
  // The last block's FFN received gradient (it is used), the whole-block run did not skip it either.
  EXPECT_GT(encoder.parameter(encoder.ffn_in_name(2)).grad().abs().sum().item<double>(), 0);
  // Inference path (no autograd: the packed attention kernel), plain and packed layers.
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(encoder.forward(ids, layout, true), whole, 1e-5, 1e-6));
  if (!emotune::kernels::built_with_onednn()) return;  // packing is oneDNN's
  model->pack_for_inference(emotune::kernels::Precision::Float32);
  EXPECT_TRUE(torch::allclose(encoder.forward(ids, layout, true), whole, 1e-5, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Families, PackedForward, ::testing::ValuesIn(emotune::tests::test_families()));

}  // namespace
