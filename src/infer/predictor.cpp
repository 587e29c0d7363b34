#include "infer/predictor.h"

#include "data/batch.h"
#include "runtime/runtime.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace emotune::infer {

Predictor::Predictor(model::ModelBundle& bundle, torch::Device device, std::size_t max_length,
                     LongTextOptions long_text)
    : bundle_(bundle), calibration_(load_model_calibration(bundle)), device_(device), long_text_(long_text) {
  max_length_ = bundle.config().choose_max_length(max_length);
  window_length_ = window_length_for(bundle, max_length);
  if (long_text_.mode == LongText::window && bundle.tokenizer->encode("", 2).ids.size() != 2)
    throw InputError("this model's tokenizer does not put one special token at each end of a text, so long texts "
                     "cannot be scored in windows: use {long_text} truncate");
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
  return encode(texts, long_text_.mode);
}

std::vector<text::Encoding> Predictor::encode(const std::vector<std::string>& texts, LongText mode) const {
  constexpr std::size_t kWhole = std::numeric_limits<std::size_t>::max();
  const auto& tokenizer = *bundle_.tokenizer;
  std::vector<text::Encoding> encodings;
  encodings.reserve(texts.size());
  for (const auto& t : texts) {
    if (mode == LongText::truncate) {
      encodings.push_back(tokenizer.encode(t, max_length_));
      if (encodings.back().truncated && !warned_of_a_cut_.exchange(true))
        spdlog::warn("a text longer than the model's {} tokens was cut to them (so are any more this run); "
                     "--long-text window (\"long_text\": \"window\" in a request) scores all of a text",
                     max_length_);
      continue;
    }
    auto e = tokenizer.encode(t, kWhole);
    if (e.ids.size() > window_length_) e.spans = tokenizer.token_spans(t, kWhole);  // where each window lies
    encodings.push_back(std::move(e));
  }
  return encodings;
}

std::vector<Prediction> Predictor::predict_encoded(const std::vector<text::Encoding>& encodings, std::size_t batch_size,
                                                   std::size_t streams) {
  std::vector<const std::vector<std::int32_t>*> sequences;
  std::vector<std::size_t> window_lengths;  // windows for the texts encode() made whole (with spans) only
  for (const auto& e : encodings) {
    sequences.push_back(&e.ids);
    window_lengths.push_back(e.spans.empty() ? std::numeric_limits<std::size_t>::max() : window_length_);
  }
  const auto w = windowed_logits(bundle_.model, sequences, window_lengths, long_text_, batch_size,
                                 bundle_.tokenizer->pad_id(), device_, streams);
  const auto& logits = w.logits;
  const auto probs = scores_from_logits(logits, bundle_.config(), calibration_);
  const auto num_labels = logits.size(1);
  const float* l = logits.data_ptr<float>();
  const float* p = probs.data_ptr<float>();
  std::vector<Prediction> out(encodings.size());
  for (std::size_t i = 0; i < encodings.size(); ++i) {
    out[i].logits.assign(l + i * num_labels, l + (i + 1) * num_labels);
    out[i].probs.assign(p + i * num_labels, p + (i + 1) * num_labels);
    out[i].truncated = encodings[i].truncated;
    out[i].windows = w.windows[i];
    out[i].window_of = w.window_of[i];
    const auto& spans = encodings[i].spans;
    for (auto& win : out[i].windows)  // token k of the text is id k + 1 (after the leading special token)
      if (spans.size() == encodings[i].ids.size() && win.end_token > win.first_token) {
        win.start = spans[win.first_token + 1].start;
        win.end = spans[win.end_token].end;
      }
  }
  return out;
}

namespace {

// The windows of a sequence of n ids (a special token at each end) for windows of max_length ids.
std::vector<TextWindow> windows_of(std::size_t n, std::size_t max_length, std::size_t stride) {
  const std::size_t tokens = n - 2, width = max_length - 2;
  const std::size_t step = stride == 0 ? std::max<std::size_t>(1, width / 2) : std::min(stride, width);
  std::vector<TextWindow> windows;
  for (std::size_t first = 0;; first += step) {
    const std::size_t end = std::min(first + width, tokens);
    windows.push_back({first, end, 0, 0});
    if (end == tokens) break;
  }
  return windows;
}

}  // namespace

WindowedLogits windowed_logits(model::SequenceClassifier& model, const std::vector<const std::vector<std::int32_t>*>& sequences,
                               const std::vector<std::size_t>& window_lengths, const LongTextOptions& options,
                               std::size_t batch_size, std::int32_t pad_id, torch::Device device, std::size_t streams) {
  if (window_lengths.size() != sequences.size()) throw InternalError("one window length per sequence");
  WindowedLogits out;
  out.windows.resize(sequences.size());
  out.window_of.resize(sequences.size());
  // Every pass: the short sequences as they are, each window of a long one as its own sequence.
  std::vector<std::vector<std::int32_t>> window_ids;
  std::vector<std::size_t> first_pass(sequences.size());  // the pass of a sequence, or of its first window
  std::size_t passes = 0;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    first_pass[i] = passes;
    const auto& ids = *sequences[i];
    const std::size_t length = window_lengths[i];
    if (ids.size() <= length) {
      ++passes;
      continue;
    }
    if (length < 3) throw SettingError("{max_length} must leave room for a token between the special tokens");
    out.windows[i] = windows_of(ids.size(), length, options.stride);
    passes += out.windows[i].size();
  }
  std::vector<const std::vector<std::int32_t>*> pass_ids(passes);
  window_ids.reserve(passes);  // no reallocation: pass_ids points into it
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    if (out.windows[i].empty()) {
      pass_ids[first_pass[i]] = sequences[i];
      continue;
    }
    const auto& ids = *sequences[i];
    for (std::size_t w = 0; w < out.windows[i].size(); ++w) {
      const auto& win = out.windows[i][w];
      std::vector<std::int32_t> part{ids.front()};
      part.insert(part.end(), ids.begin() + 1 + static_cast<std::ptrdiff_t>(win.first_token),
                  ids.begin() + 1 + static_cast<std::ptrdiff_t>(win.end_token));
      part.push_back(ids.back());
      window_ids.push_back(std::move(part));
      pass_ids[first_pass[i] + w] = &window_ids.back();
    }
  }
  const auto all = compute_logits(model, pass_ids, batch_size, pad_id, device, streams);
  if (passes == sequences.size()) {
    out.logits = all;
    return out;
  }
  const auto labels = all.size(1);
  out.logits = torch::empty({static_cast<int64_t>(sequences.size()), labels}, torch::kFloat32);
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    const auto count = static_cast<int64_t>(std::max<std::size_t>(1, out.windows[i].size()));
    const auto rows = all.narrow(0, static_cast<int64_t>(first_pass[i]), count);
    if (count == 1) {
      out.logits[static_cast<int64_t>(i)].copy_(rows[0]);
    } else if (options.combine == WindowCombine::mean) {
      out.logits[static_cast<int64_t>(i)].copy_(rows.mean(0));
    } else {
      const auto [best, which] = rows.max(0);
      out.logits[static_cast<int64_t>(i)].copy_(best);
      const auto w = which.to(torch::kInt64).contiguous();
      out.window_of[i].assign(w.data_ptr<int64_t>(), w.data_ptr<int64_t>() + labels);
    }
  }
  return out;
}

std::size_t window_length_for(const model::ModelBundle& bundle, std::size_t requested) {
  if (requested > 0 || bundle.dir.empty()) return bundle.config().choose_max_length(requested);
  const auto args = bundle.dir / "training_args.json";
  std::size_t trained = 0;
  if (std::filesystem::exists(args)) {
    try {
      const auto j = util::read_json_file(args);
      if (j.is_object() && j.contains("max_length") && j["max_length"].is_number_unsigned())
        trained = j["max_length"].get<std::size_t>();
    } catch (const std::exception&) {
      trained = 0;  // a record of the run, not a setting: unreadable means unknown
    }
  }
  const auto positions = static_cast<std::size_t>(bundle.config().max_tokens());
  return trained >= 3 && trained <= positions ? trained : bundle.config().choose_max_length(0);
}

LongText parse_long_text(const std::string& name) {
  if (name == "truncate") return LongText::truncate;
  if (name == "window") return LongText::window;
  throw SettingError("{long_text} must be truncate or window, not '" + name + "'");
}

WindowCombine parse_window_combine(const std::string& name) {
  if (name == "max") return WindowCombine::max;
  if (name == "mean") return WindowCombine::mean;
  throw SettingError("{window_combine} must be max or mean, not '" + name + "'");
}

torch::Tensor scores_from_logits(const torch::Tensor& logits, const model::ModelConfig& config,
                                 const Calibration& calibration) {
  if (config.single_label) return torch::softmax(logits, 1);
  return torch::sigmoid(calibrated_logits(logits, calibration));
}

torch::Tensor calibrated_logits(const torch::Tensor& logits, const Calibration& calibration) {
  if (!calibration.applies()) return logits;
  const auto as_row = [&](const std::vector<float>& v) {
    return torch::tensor(v, torch::kFloat32).to(logits.device(), logits.scalar_type()).unsqueeze(0);
  };
  return logits / as_row(calibration.temperature) + as_row(calibration.bias);
}

Calibration load_model_calibration(const model::ModelBundle& bundle) {
  if (bundle.dir.empty()) return {};
  auto calibration = load_calibration(bundle.dir, bundle.labels());
  if (calibration.applies() && bundle.config().single_label)
    throw InputError((bundle.dir / "calibration.json").string() +
                     ": a calibration rescales per-label sigmoid scores, and this model is single-label (softmax): remove the file");
  return calibration;
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
