// Turning token id sequences into padded model inputs: each batch pads only to its longest member.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace emotune::data {

struct PaddedBatch {
  torch::Tensor input_ids;       // [batch, longest] int64, padded with pad_id
  torch::Tensor attention_mask;  // [batch, longest] int64, 1 = token
  std::size_t real_tokens = 0;   // tokens that are not padding
};

PaddedBatch pad_batch(const std::vector<const std::vector<std::int32_t>*>& sequences, std::int32_t pad_id);

// Multi-hot targets [batch, num_labels] (float32) from label id lists.
torch::Tensor multi_hot(const std::vector<const std::vector<int>*>& labels, int64_t num_labels);

}  // namespace emotune::data
