// Turning token id sequences into padded model inputs: each batch pads only to its longest member.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "data/goemotions.h"
#include "text/tokenizer.h"

namespace emotune::data {

struct PaddedBatch {
  torch::Tensor input_ids;       // [batch, longest] int64, padded with pad_id
  torch::Tensor attention_mask;  // [batch, longest] int64, 1 = token
  std::size_t real_tokens = 0;   // tokens that are not padding
};

PaddedBatch pad_batch(const std::vector<const std::vector<std::int32_t>*>& sequences, std::int32_t pad_id);

// A dataset tokenized once, up front.
struct EncodedDataset {
  std::vector<std::vector<std::int32_t>> ids;
  std::vector<std::vector<int>> labels;
  std::vector<int64_t> first_label;
  std::size_t size() const { return ids.size(); }
};

EncodedDataset encode_dataset(const Dataset& ds, const text::Tokenizer& tokenizer, std::size_t max_length);

// Multi-hot targets [batch, num_labels] (float32) from label id lists.
torch::Tensor multi_hot(const std::vector<const std::vector<int>*>& labels, int64_t num_labels);

}  // namespace emotune::data
