// Softmax self-attention of each sequence over itself, computed straight on packed [tokens, dim]
// rows, for inference and for training. It replaces unpack -> batched matmul -> softmax -> batched
// matmul -> pack: with short texts that path is thousands of tiny matrix products, run one after
// another, plus the arithmetic and dropout draws of the padding.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace emotune::kernels {

struct PackedSequences {
  const int64_t* start;   // first packed row of each sequence
  const int64_t* length;  // its number of rows
  int64_t count;
  // Attend from position 0 only (the row the classifier reads) and write sequence s's result to
  // out row s: [count, heads * head_dim].
  bool first_only = false;
};

// An additive bias on the attention scores, the one hook every attention path honours (MPNet's
// relative positions; DeBERTa- or T5-style biases alike): score(h, i, j) += data[(h * seq + i) * seq + j]
// for query position i and key position j counted from each sequence's first token. `seq` is at
// least the longest sequence. A null `data` adds nothing.
struct ScoreBias {
  const float* data = nullptr;
  int64_t seq = 0;
};

// q, k, v: rows of heads * head_dim values, `in_stride` floats apart (so they may be column blocks of
// one fused [tokens, 3 * dim] matrix); out: [tokens, heads * head_dim] (or [count, ...], see
// first_only). For every sequence and head: out = softmax(q k^T * scale) v, over the sequence's own
// rows only (padding never exists here).
void packed_attention(const float* q, const float* k, const float* v, int64_t in_stride, float* out,
                      const PackedSequences& seqs, int64_t heads, int64_t head_dim, float scale,
                      ScoreBias bias = {});

// The same attention where gradients are wanted (training, explanations): differentiable in q, k and v,
// with dropout of probability `dropout_p` on the attention weights (hashed masks, see dropout.h).
// q: [tokens, dim], or [count, dim] with first_only; k, v: [tokens, dim]; start, length: CPU int64
// [count]; all float32 on the CPU. Returns q's shape. The softmax weights are kept for backward
// (heads * queries * length floats per sequence), never a padded grid. `bias` (undefined: none) is a
// float32 [heads, seq, seq] ScoreBias, differentiable too: its gradient sums over the sequences.
torch::Tensor packed_attention_with_grad(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& start, const torch::Tensor& length, int64_t heads,
                                         bool first_only, double dropout_p, const torch::Tensor& bias = {});

}  // namespace emotune::kernels
