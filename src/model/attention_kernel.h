// Softmax self-attention of each sequence over itself, computed straight on packed [tokens, dim]
// rows, for inference. It replaces unpack -> batched matmul -> softmax -> batched matmul -> pack:
// with short texts that path is thousands of tiny matrix products, whose per-call cost dominated.
#pragma once

#include <cstdint>

namespace emotune::model {

struct PackedSequences {
  const int64_t* start;   // first packed row of each sequence
  const int64_t* length;  // its number of rows
  int64_t count;
  // Attend from position 0 only (the row the classifier reads) and write sequence s's result to
  // out row s: [count, heads * head_dim].
  bool first_only = false;
};

// q, k, v: rows of heads * head_dim values, `in_stride` floats apart (so they may be column blocks of
// one fused [tokens, 3 * dim] matrix); out: [tokens, heads * head_dim] (or [count, ...], see
// first_only). For every sequence and head: out = softmax(q k^T * scale) v, over the sequence's own
// rows only (padding never exists here).
void packed_attention(const float* q, const float* k, const float* v, int64_t in_stride, float* out,
                      const PackedSequences& seqs, int64_t heads, int64_t head_dim, float scale);

}  // namespace emotune::model
