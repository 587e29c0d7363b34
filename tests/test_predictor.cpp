// Batch inference over many texts: streams (whole batches side by side, one thread each) must give
// the logits of one batch at a time, in input order, leave the caller's thread settings alone, and
// pass a failure in any stream back to the caller.
#include <gtest/gtest.h>

#include "expect_error.h"
#include <omp.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <vector>

#include "infer/predictor.h"
#include "model/checkpoint.h"

namespace {

namespace m = emotune::model;

m::SequenceClassifier small_model(m::Precision precision) {
  m::ModelConfig c;
  c.vocab_size = 30;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_heads = 4;
  c.num_layers = 2;
  c.max_position_embeddings = 24;
  c.labels = {"x", "y", "z"};
  auto model = m::init_classifier(c, 5);
  model->eval();
  if (emotune::kernels::built_with_onednn()) model->pack_for_inference(precision);  // else plain, as inference loads it there
  return model;
}

// [CLS] w... [SEP] with lengths 2..20 in a scrambled order, so that sorting by length moves them.
std::vector<std::vector<std::int32_t>> sequences(int count) {
  std::vector<std::vector<std::int32_t>> out;
  for (int i = 0; i < count; ++i) {
    std::vector<std::int32_t> ids{2};
    const int words = (i * 7) % 19;
    for (int w = 0; w < words; ++w) ids.push_back(5 + (i * 3 + w * 5) % 25);
    ids.push_back(3);
    out.push_back(ids);
  }
  return out;
}

std::vector<const std::vector<std::int32_t>*> pointers(const std::vector<std::vector<std::int32_t>>& s) {
  std::vector<const std::vector<std::int32_t>*> p;
  for (const auto& x : s) p.push_back(&x);
  return p;
}

TEST(Streams, GiveTheLogitsOfOneBatchAtATimeInInputOrder) {
  const auto seqs = sequences(45);
  for (auto precision : {m::Precision::Float32, m::Precision::Int8}) {
    if (precision == m::Precision::Int8 && !emotune::kernels::built_with_onednn()) continue;  // int8 is oneDNN's
    auto model = small_model(precision);
    const auto serial = emotune::infer::compute_logits(model, pointers(seqs), 4, 0, torch::kCPU, 1);
    const int threads_before = at::get_num_threads(), omp_before = omp_get_max_threads();
    const auto streamed = emotune::infer::compute_logits(model, pointers(seqs), 4, 0, torch::kCPU, 3);
    EXPECT_EQ(at::get_num_threads(), threads_before);
    EXPECT_EQ(omp_get_max_threads(), omp_before);
    ASSERT_EQ(streamed.sizes(), serial.sizes());
    EXPECT_TRUE(torch::allclose(streamed, serial, 1e-5, 1e-6)) << (streamed - serial).abs().max();
    // Row i belongs to text i: each text alone gives its row (in float; int8's per-call activation
    // scale makes a text's logits depend slightly on its batch-mates).
    if (precision == m::Precision::Int8) continue;
    torch::InferenceMode inference;
    for (std::size_t i : {0u, 13u, 44u}) {
      const auto ids = torch::tensor(std::vector<int64_t>(seqs[i].begin(), seqs[i].end())).view({1, -1});
      const auto alone = model->forward(ids, torch::ones_like(ids));
      EXPECT_TRUE(torch::allclose(streamed[static_cast<int64_t>(i)], alone[0], 1e-5, 1e-6)) << "text " << i;
    }
  }
}

TEST(Streams, PassAFailureBackToTheCaller) {
  auto seqs = sequences(30);
  seqs[17][1] = 1000;  // beyond the vocabulary: the embedding lookup throws inside a stream
  auto model = small_model(m::Precision::Float32);
  EXPECT_THROW_MESSAGE(emotune::infer::compute_logits(model, pointers(seqs), 4, 0, torch::kCPU, 2), std::exception,
                       "out of range");
}

}  // namespace
