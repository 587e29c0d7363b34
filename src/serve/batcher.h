// Dynamic batching: requests from many connections wait in one queue; a single worker runs
// them together (up to max_batch texts, or max_wait after the first one arrived), so throughput
// under load approaches batch inference while a lone request waits at most max_wait.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/predictor.h"

namespace emotune::serve {

class DynamicBatcher {
 public:
  // `on_batch(texts)` is told each batch's size (for metrics).
  DynamicBatcher(infer::Predictor& predictor, std::size_t max_batch, std::chrono::microseconds max_wait,
                 std::function<void(std::size_t)> on_batch);
  ~DynamicBatcher();  // finishes what is queued, then stops
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues texts (at most max_batch) and returns their predictions when their batch has run.
  std::future<std::vector<infer::Prediction>> submit(std::vector<std::string> texts);

 private:
  struct Job {
    std::vector<std::string> texts;
    std::promise<std::vector<infer::Prediction>> done;
  };
  void run();

  infer::Predictor& predictor_;
  std::size_t max_batch_;
  std::chrono::microseconds max_wait_;
  std::function<void(std::size_t)> on_batch_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace emotune::serve
