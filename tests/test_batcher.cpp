// The server's dynamic batcher: requests queued together run as one batch (no more than max_batch
// texts or max_batch_tokens tokens), each request gets exactly its own predictions back, a failing
// batch fails every request in it and only those, and the destructor finishes what is queued.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <vector>

#include "families.h"
#include "infer/predictor.h"
#include "model/checkpoint.h"
#include "serve/batcher.h"

namespace {

namespace fs = std::filesystem;
namespace m = emotune::model;
using emotune::infer::Prediction;
using emotune::serve::DynamicBatcher;
using emotune::text::Encoding;
using namespace std::chrono_literals;

// A 2-layer classifier over a 30-word WordPiece vocabulary ([PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4).
m::ModelBundle small_bundle() {
  const fs::path dir = fs::temp_directory_path() / ("emotune_batcher_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream vocab(dir / "vocab.txt");
    vocab << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int i = 5; i < 30; ++i) vocab << "w" << i << "\n";
  }
  m::ModelConfig c = emotune::tests::small_config(
      "bert", {{"hidden", 32}, {"intermediate", 64}, {"heads", 4}, {"layers", 2}, {"positions", 24}});
  c.vocab_size = 30;
  c.labels = {"x", "y", "z"};
  m::ModelBundle bundle{m::init_classifier(c, 7), emotune::text::load_tokenizer(dir), dir, {}};
  fs::remove_all(dir);
  bundle.model->eval();
  return bundle;
}

Encoding text_of(int words, int seed) {
  Encoding e;
  e.ids.push_back(2);
  for (int w = 0; w < words; ++w) e.ids.push_back(5 + (seed * 3 + w * 7) % 25);
  e.ids.push_back(3);
  return e;
}

// What the batcher hands one request: its predictions or its failure.
struct Outcome {
  std::vector<Prediction> predictions;
  std::exception_ptr failure;
};

struct Recorder {
  std::mutex mutex;
  std::vector<std::size_t> batch_sizes;
  std::function<void(std::size_t)> on_batch() {
    return [this](std::size_t n) {
      std::lock_guard<std::mutex> lock(mutex);
      batch_sizes.push_back(n);
    };
  }
};

std::future<Outcome> submit(DynamicBatcher& batcher, std::vector<Encoding> texts) {
  auto promise = std::make_shared<std::promise<Outcome>>();
  auto future = promise->get_future();
  batcher.submit(std::move(texts), [promise](std::vector<Prediction> p, std::exception_ptr e) {
    promise->set_value(Outcome{std::move(p), e});
  });
  return future;
}

void expect_same_logits(const Prediction& a, const Prediction& b) {
  ASSERT_EQ(a.logits.size(), b.logits.size());
  for (std::size_t k = 0; k < a.logits.size(); ++k) EXPECT_NEAR(a.logits[k], b.logits[k], 1e-5) << "label " << k;
}

TEST(DynamicBatcher, RunsRequestsQueuedTogetherAsOneBatchAndGivesEachItsOwnRows) {
  auto bundle = small_bundle();
  emotune::infer::Predictor predictor(bundle, torch::kCPU);
  std::vector<std::vector<Encoding>> requests{{text_of(3, 1), text_of(9, 2)}, {text_of(1, 3)}, {text_of(12, 4), text_of(5, 5), text_of(0, 6)}};
  Recorder recorder;
  std::vector<std::future<Outcome>> outcomes;
  {
    // A long wait: the batch closes when the three requests (6 texts) have filled it.
    DynamicBatcher batcher(predictor, 6, 10000, 10s, recorder.on_batch());
    for (const auto& r : requests) outcomes.push_back(submit(batcher, r));
    for (auto& o : outcomes) ASSERT_EQ(o.wait_for(10s), std::future_status::ready);
  }
  EXPECT_EQ(recorder.batch_sizes, std::vector<std::size_t>{6});
  for (std::size_t r = 0; r < requests.size(); ++r) {
    Outcome got = outcomes[r].get();
    ASSERT_FALSE(got.failure);
    const auto alone = predictor.predict_encoded(requests[r]);
    ASSERT_EQ(got.predictions.size(), alone.size()) << "request " << r;
    for (std::size_t i = 0; i < alone.size(); ++i) expect_same_logits(got.predictions[i], alone[i]);
  }
}

TEST(DynamicBatcher, NeverExceedsItsTextOrTokenLimits) {
  auto bundle = small_bundle();
  emotune::infer::Predictor predictor(bundle, torch::kCPU);
  for (const auto& [max_batch, max_tokens] : {std::pair<std::size_t, std::size_t>{5, 10000}, {64, 40}}) {
    Recorder recorder;
    std::vector<std::future<Outcome>> outcomes;
    {
      DynamicBatcher batcher(predictor, max_batch, max_tokens, 200ms, recorder.on_batch());
      for (int r = 0; r < 8; ++r) outcomes.push_back(submit(batcher, {text_of(r, r), text_of(8 - r, r + 1)}));
      for (auto& o : outcomes) {
        Outcome got = o.get();
        EXPECT_FALSE(got.failure);
        EXPECT_EQ(got.predictions.size(), 2u);
      }
    }
    std::size_t total = 0;
    for (std::size_t n : recorder.batch_sizes) {
      EXPECT_LE(n, max_batch);
      total += n;
    }
    EXPECT_EQ(total, 16u);
    // Each request holds 2 + 2 + 8 = 12 tokens: at most 3 fit in 40.
    if (max_tokens == 40)
      for (std::size_t n : recorder.batch_sizes) EXPECT_LE(n, 6u);
  }
}

TEST(DynamicBatcher, AFailingBatchFailsOnlyItsOwnRequests) {
  auto bundle = small_bundle();
  emotune::infer::Predictor predictor(bundle, torch::kCPU);
  Recorder recorder;
  Encoding beyond_vocabulary = text_of(2, 1);
  beyond_vocabulary.ids[1] = 1000;
  DynamicBatcher batcher(predictor, 64, 10000, 1s, recorder.on_batch());
  auto bad = submit(batcher, {beyond_vocabulary});
  auto neighbour = submit(batcher, {text_of(4, 2)});
  Outcome bad_outcome = bad.get(), neighbour_outcome = neighbour.get();
  EXPECT_TRUE(bad_outcome.failure);
  EXPECT_TRUE(neighbour_outcome.failure);  // same batch
  EXPECT_TRUE(bad_outcome.predictions.empty());
  // The batcher goes on: the next request has its answer.
  Outcome later = submit(batcher, {text_of(4, 2)}).get();
  EXPECT_FALSE(later.failure);
  EXPECT_EQ(later.predictions.size(), 1u);
}

TEST(DynamicBatcher, FinishesWhatIsQueuedWhenDestroyed) {
  auto bundle = small_bundle();
  emotune::infer::Predictor predictor(bundle, torch::kCPU);
  std::vector<std::future<Outcome>> outcomes;
  {
    DynamicBatcher batcher(predictor, 2, 10000, 5s, nullptr);
    for (int r = 0; r < 5; ++r) outcomes.push_back(submit(batcher, {text_of(r + 1, r)}));
  }  // destroyed at once: the 5 s wait must not hold it, and nothing queued is dropped
  for (auto& o : outcomes) {
    ASSERT_EQ(o.wait_for(0s), std::future_status::ready);
    Outcome got = o.get();
    EXPECT_FALSE(got.failure);
    EXPECT_EQ(got.predictions.size(), 1u);
  }
}

}  // namespace
