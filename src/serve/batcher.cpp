#include "serve/batcher.h"

namespace emotune::serve {

DynamicBatcher::DynamicBatcher(infer::Predictor& predictor, std::size_t max_batch, std::size_t max_batch_tokens,
                               std::chrono::microseconds max_wait, std::function<void(std::size_t)> on_batch)
    : predictor_(predictor), max_batch_(max_batch), max_batch_tokens_(max_batch_tokens), max_wait_(max_wait),
      on_batch_(std::move(on_batch)) {
  worker_ = std::thread([this] { run(); });
}

DynamicBatcher::~DynamicBatcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void DynamicBatcher::submit(std::vector<text::Encoding> texts, Completion done) {
  std::size_t tokens = 0;
  for (const auto& e : texts) tokens += e.ids.size();
  Job job{std::move(texts), tokens, std::move(done)};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void DynamicBatcher::run() {
  for (;;) {
    std::vector<Job> jobs;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      // The first request opens a batch; others may join until it is full or the wait is over.
      const auto deadline = std::chrono::steady_clock::now() + max_wait_;
      auto full = [&] {
        std::size_t texts = 0, tokens = 0;
        for (const auto& j : queue_) {
          texts += j.texts.size();
          tokens += j.tokens;
        }
        return texts >= max_batch_ || tokens >= max_batch_tokens_;
      };
      cv_.wait_until(lock, deadline, [&] { return stopping_ || full(); });
      std::size_t texts = 0, tokens = 0;
      while (!queue_.empty() && (jobs.empty() || (texts + queue_.front().texts.size() <= max_batch_ &&
                                                  tokens + queue_.front().tokens <= max_batch_tokens_))) {
        texts += queue_.front().texts.size();
        tokens += queue_.front().tokens;
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<text::Encoding> batch;
    for (const auto& j : jobs) batch.insert(batch.end(), j.texts.begin(), j.texts.end());
    std::vector<infer::Prediction> preds;
    std::exception_ptr failed;
    try {
      preds = predictor_.predict_encoded(batch, batch.size());
      if (on_batch_) on_batch_(batch.size());
    } catch (...) {
      failed = std::current_exception();
    }
    std::size_t at = 0;
    for (auto& j : jobs) {
      std::vector<infer::Prediction> mine;
      if (!failed)
        mine.assign(std::make_move_iterator(preds.begin() + static_cast<long>(at)),
                    std::make_move_iterator(preds.begin() + static_cast<long>(at + j.texts.size())));
      at += j.texts.size();
      j.done(std::move(mine), failed);
    }
  }
}

}  // namespace emotune::serve
