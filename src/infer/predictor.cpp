#include "infer/predictor.h"

#include "data/batch.h"
#include "runtime/runtime.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace emotune::infer {

Predictor::Predictor(model::ModelBundle& bundle, torch::Device device, std::size_t max_length)
    : bundle_(bundle), device_(device) {
  max_length_ = bundle.config().choose_max_length(max_length);
  bundle_.model->to(device_);
  bundle_.model->eval();
}

namespace {
// Runs job(0..jobs-1) on `streams` threads, each taking the next job when it is free, with libtorch's
// and oneDNN's kernels single-threaded inside every stream. On a few cores, whole batches side by side
// beat every product, layer norm and attention split across the cores: no barrier per operation, and
// no core idle while the other finishes its share. The first error stops the rest and is rethrown.
void run_streams(std::size_t jobs, std::size_t streams, const std::function<void(std::size_t)>& job) {
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto stream = [&] {
    at::internal::lazy_init_num_threads();  // first, or it would later reset the count set below
    omp_set_num_threads(1);                 // this thread's own setting; the caller's is untouched
    torch::InferenceMode inference;
    try {
      for (std::size_t i; (i = next++) < jobs;) job(i);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = jobs;
    }
  };
  std::vector<std::thread> threads;
  try {
    for (std::size_t s = 0; s < streams; ++s) threads.emplace_back(stream);
  } catch (...) {  // no thread to be had: stop the started ones (a joinable thread must not be destroyed)
    next = jobs;
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}
}  // namespace

torch::Tensor compute_logits(model::SequenceClassifier& model,
                             const std::vector<const std::vector<std::int32_t>*>& sequences, std::size_t batch_size,
                             std::int32_t pad_id, torch::Device device, std::size_t streams) {
  if (batch_size == 0) throw std::invalid_argument("{batch_size} must be positive");
  std::vector<std::size_t> order(sequences.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return sequences[a]->size() < sequences[b]->size(); });
  const auto num_labels = static_cast<int64_t>(model->config.labels.size());
  auto out = torch::empty({static_cast<int64_t>(sequences.size()), num_labels}, torch::kFloat32);
  auto run_batch = [&](std::size_t index) {
    const std::size_t start = index * batch_size, n = std::min(batch_size, order.size() - start);
    std::vector<const std::vector<std::int32_t>*> chunk;
    for (std::size_t i = 0; i < n; ++i) chunk.push_back(sequences[order[start + i]]);
    const data::PaddedBatch b = data::pad_batch(chunk, pad_id);
    const auto logits = model->forward(b.input_ids.to(device), b.attention_mask.to(device)).to(torch::kCPU).contiguous();
    // Each batch writes its own rows, so streams never write the same memory.
    for (std::size_t i = 0; i < n; ++i)
      std::copy_n(logits.data_ptr<float>() + i * num_labels, num_labels, out.data_ptr<float>() + order[start + i] * num_labels);
  };
  const std::size_t batches = (order.size() + batch_size - 1) / batch_size;
  if (streams > 1 && batches > 1 && device.is_cpu()) {
    run_streams(batches, std::min(streams, batches), run_batch);
  } else {
    torch::InferenceMode inference;
    for (std::size_t i = 0; i < batches; ++i) run_batch(i);
  }
  return out;
}

std::vector<Prediction> Predictor::predict(const std::vector<std::string>& texts, std::size_t batch_size,
                                           std::size_t streams) {
  return predict_encoded(encode(texts), batch_size, streams);
}

std::vector<text::Encoding> Predictor::encode(const std::vector<std::string>& texts) const {
  std::vector<text::Encoding> encodings;
  encodings.reserve(texts.size());
  for (const auto& t : texts) encodings.push_back(bundle_.tokenizer->encode(t, max_length_));
  return encodings;
}

std::vector<Prediction> Predictor::predict_encoded(const std::vector<text::Encoding>& encodings, std::size_t batch_size,
                                                   std::size_t streams) {
  std::vector<const std::vector<std::int32_t>*> sequences;
  for (const auto& e : encodings) sequences.push_back(&e.ids);
  const auto logits = compute_logits(bundle_.model, sequences, batch_size, bundle_.tokenizer->pad_id(), device_, streams);
  const auto probs = scores_from_logits(logits, bundle_.config());
  const auto num_labels = logits.size(1);
  const float* l = logits.data_ptr<float>();
  const float* p = probs.data_ptr<float>();
  std::vector<Prediction> out(encodings.size());
  for (std::size_t i = 0; i < encodings.size(); ++i) {
    out[i].logits.assign(l + i * num_labels, l + (i + 1) * num_labels);
    out[i].probs.assign(p + i * num_labels, p + (i + 1) * num_labels);
    out[i].truncated = encodings[i].truncated;
  }
  return out;
}

torch::Tensor scores_from_logits(const torch::Tensor& logits, const model::ModelConfig& config) {
  return config.single_label ? torch::softmax(logits, 1) : torch::sigmoid(logits);
}

std::vector<std::size_t> select_labels(const std::vector<float>& scores, const std::vector<float>& thresholds,
                                       std::size_t top_k) {
  std::vector<std::size_t> ids;
  for (std::size_t i = 0; i < scores.size(); ++i)
    if (scores[i] >= thresholds[i]) ids.push_back(i);
  std::stable_sort(ids.begin(), ids.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  if (top_k && ids.size() > top_k) ids.resize(top_k);
  return ids;
}

torch::Tensor group_probabilities(const torch::Tensor& probs, data::Taxonomy taxonomy) {
  const auto map = data::taxonomy_map(taxonomy);
  const auto groups = static_cast<int64_t>(data::taxonomy_labels(taxonomy).size());
  auto grouped = torch::zeros({probs.size(0), groups}, probs.options());
  for (std::size_t e = 0; e < map.size(); ++e) {
    auto col = grouped.select(1, map[e]);
    col.copy_(torch::maximum(col, probs.select(1, static_cast<int64_t>(e))));
  }
  return grouped;
}

InferenceModel load_for_inference(const std::string& model_dir, int threads, const std::string& device,
                                  const std::string& precision, bool map_embeddings) {
  const auto streams = static_cast<std::size_t>(runtime::configure_threads(threads));
  const torch::Device on = runtime::resolve_device(device);
  auto load = model::inference_options(precision, on);
  load.map_embeddings = map_embeddings;
  return {streams, on, model::load_model_dir(model_dir, load)};
}

}  // namespace emotune::infer
