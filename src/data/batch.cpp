#include "data/batch.h"

#include <algorithm>

namespace emotune::data {

PaddedBatch pad_batch(const std::vector<const std::vector<std::int32_t>*>& sequences, std::int32_t pad_id) {
  std::size_t longest = 0;
  for (const auto* s : sequences) longest = std::max(longest, s->size());
  const auto n = static_cast<int64_t>(sequences.size());
  PaddedBatch b;
  b.input_ids = torch::full({n, static_cast<int64_t>(longest)}, pad_id, torch::kInt64);
  b.attention_mask = torch::zeros({n, static_cast<int64_t>(longest)}, torch::kInt64);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& s = *sequences[static_cast<std::size_t>(i)];
    for (std::size_t j = 0; j < s.size(); ++j) {
      ids[i][static_cast<int64_t>(j)] = s[j];
      mask[i][static_cast<int64_t>(j)] = 1;
    }
    b.real_tokens += s.size();
  }
  return b;
}

EncodedDataset encode_dataset(const Dataset& ds, const text::Tokenizer& tokenizer, std::size_t max_length) {
  EncodedDataset e;
  for (const auto& ex : ds.examples) {
    e.ids.push_back(tokenizer.encode(ex.text, max_length).ids);
    e.labels.push_back(ex.labels);
    e.first_label.push_back(ex.first_label);
  }
  return e;
}

torch::Tensor multi_hot(const std::vector<const std::vector<int>*>& labels, int64_t num_labels) {
  auto t = torch::zeros({static_cast<int64_t>(labels.size()), num_labels}, torch::kFloat32);
  auto a = t.accessor<float, 2>();
  for (std::size_t i = 0; i < labels.size(); ++i)
    for (int l : *labels[i]) a[static_cast<int64_t>(i)][l] = 1.0f;
  return t;
}

}  // namespace emotune::data
