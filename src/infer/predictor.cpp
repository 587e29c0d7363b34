#include "infer/predictor.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

namespace emotune::infer {

Predictor::Predictor(model::ModelBundle& bundle, torch::Device device, std::size_t max_length)
    : bundle_(bundle), device_(device) {
  const auto limit = static_cast<std::size_t>(bundle.config().max_position_embeddings);
  max_length_ = max_length == 0 ? limit : max_length;
  if (max_length_ > limit)
    throw std::invalid_argument("--max-length " + std::to_string(max_length_) + " exceeds the model's " +
                                std::to_string(limit) + " positions");
  if (max_length_ < 2) throw std::invalid_argument("--max-length must be at least 2");
  bundle_.model->to(device_);
  bundle_.model->eval();
}

std::vector<Prediction> Predictor::predict(const std::vector<std::string>& texts, std::size_t batch_size) {
  if (batch_size == 0) throw std::invalid_argument("--batch-size must be positive");
  std::vector<text::Encoding> encodings;
  encodings.reserve(texts.size());
  for (const auto& t : texts) encodings.push_back(bundle_.tokenizer.encode(t, max_length_));
  std::vector<std::size_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return encodings[a].ids.size() < encodings[b].ids.size(); });

  std::vector<Prediction> out(texts.size());
  const auto num_labels = static_cast<int64_t>(bundle_.labels().size());
  const auto pad = bundle_.tokenizer.pad_id();
  torch::InferenceMode inference;
  for (std::size_t start = 0; start < order.size(); start += batch_size) {
    const std::size_t n = std::min(batch_size, order.size() - start);
    std::size_t seq = 0;
    for (std::size_t i = 0; i < n; ++i) seq = std::max(seq, encodings[order[start + i]].ids.size());
    auto ids = torch::full({static_cast<int64_t>(n), static_cast<int64_t>(seq)}, pad, torch::kInt64);
    auto mask = torch::zeros({static_cast<int64_t>(n), static_cast<int64_t>(seq)}, torch::kInt64);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    for (std::size_t i = 0; i < n; ++i) {
      const auto& e = encodings[order[start + i]].ids;
      for (std::size_t j = 0; j < e.size(); ++j) {
        ids_a[i][j] = e[j];
        mask_a[i][j] = 1;
      }
    }
    auto logits = bundle_.model->forward(ids.to(device_), mask.to(device_)).to(torch::kCPU).contiguous();
    auto probs = torch::sigmoid(logits);
    const float* l = logits.data_ptr<float>();
    const float* p = probs.data_ptr<float>();
    for (std::size_t i = 0; i < n; ++i) {
      Prediction& pred = out[order[start + i]];
      pred.logits.assign(l + i * num_labels, l + (i + 1) * num_labels);
      pred.probs.assign(p + i * num_labels, p + (i + 1) * num_labels);
      pred.truncated = encodings[order[start + i]].truncated;
    }
  }
  return out;
}

std::vector<float> load_thresholds(const std::filesystem::path& model_dir, const std::vector<std::string>& labels) {
  std::vector<float> t(labels.size(), 0.5f);
  const auto path = model_dir / "thresholds.json";
  if (!std::filesystem::exists(path)) return t;
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("invalid JSON in " + path.string() + ": " + e.what());
  }
  const auto values = j.is_object() ? j.value("values", nlohmann::json()) : nlohmann::json();
  if (values.is_array() && values.size() == labels.size()) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (!values[i].is_number()) throw std::runtime_error(path.string() + ": thresholds must be numbers");
      t[i] = values[i].get<float>();
    }
  } else if (values.is_object()) {
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (values.contains(labels[i]) && values[labels[i]].is_number()) t[i] = values[labels[i]].get<float>();
  } else {
    throw std::runtime_error(path.string() + ": expected \"values\": one threshold per label");
  }
  return t;
}

}  // namespace emotune::infer
