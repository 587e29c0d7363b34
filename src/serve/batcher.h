// Dynamic batching: requests from many connections, tokenized on their own threads, wait in one
// queue; a single worker runs them together (up to max_batch texts and max_batch_tokens tokens, or
// max_wait after the first one arrived), so throughput under load approaches batch inference while a
// lone request waits at most max_wait.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/predictor.h"

namespace emotune::serve {

class DynamicBatcher {
 public:
  // `on_batch(texts)` is told each batch's size (for metrics).
  DynamicBatcher(infer::Predictor& predictor, std::size_t max_batch, std::size_t max_batch_tokens,
                 std::chrono::microseconds max_wait, std::function<void(std::size_t)> on_batch);
  ~DynamicBatcher();  // finishes what is queued, then stops
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Told a job's predictions (or why there are none) on the batcher's thread, so it must be quick.
  using Completion = std::function<void(std::vector<infer::Prediction>, std::exception_ptr)>;

  // Queues tokenized texts (at most max_batch, max_batch_tokens); `done` is called when their batch
  // has run. No thread waits meanwhile.
  void submit(std::vector<text::Encoding> texts, Completion done);

 private:
  struct Job {
    std::vector<text::Encoding> texts;
    std::size_t tokens;
    Completion done;
  };
  void run();

  infer::Predictor& predictor_;
  std::size_t max_batch_, max_batch_tokens_;
  std::chrono::microseconds max_wait_;
  std::function<void(std::size_t)> on_batch_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace emotune::serve
