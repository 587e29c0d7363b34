// The pieces every post-LN transformer encoder family computes the same way, whatever Hugging Face
// names its modules: where the real tokens of a padded batch sit, multi-head self-attention from
// given q/k/v projections, and the feed-forward activation.
#pragma once

#include <torch/nn.h>

#include <memory>
#include <string>

#include "model/config.h"
#include "model/kernels.h"

namespace emotune::model {

// Where the real tokens of a right- or left-padded batch sit. Every token-wise layer (embeddings,
// projections, FFN, LayerNorm) runs on the packed [tokens, dim] matrix, so padding costs no arithmetic;
// only attention needs the [batch, seq] grid back. Results are those of the padded computation: a padded
// position never influences a real one.
struct TokenLayout {
  explicit TokenLayout(const torch::Tensor& attention_mask);
  // [batch*seq, d] grid rows -> [tokens, d]
  torch::Tensor pack(const torch::Tensor& grid) const;
  // [tokens, d] -> [batch, seq, d], zeros at padding
  torch::Tensor unpack(const torch::Tensor& rows) const;
  // Position p of every sequence as grid rows [batch*seq] -> packed [tokens]: 0, 1, ... per sequence.
  torch::Tensor positions() const;

  int64_t batch, seq, tokens;
  torch::Tensor mask;   // [batch, seq], 1 = token
  torch::Tensor index;  // [tokens] flat grid position of each packed row
  torch::Tensor first;  // [batch] packed row of each sequence's position 0 (the [CLS] token)
  torch::Tensor lengths;  // [batch] real tokens per sequence
  bool dense;           // no padding at all: packing is the identity and costs nothing
};

// softmax(q k^T / sqrt(head_dim)) v of packed rows x [tokens, dim], per head, each sequence over its
// own tokens, before the output projection: -> [tokens, dim]; with first_only, only each sequence's
// position 0 attends (keys and values still come from every token): -> [batch, dim]. q, k and v are
// the layer's projections (Hugging Face's q_lin/k_lin/v_lin or query/key/value), or once packed for
// inference `fused`, the three as one layer. `dropout` acts on the attention probabilities. On the CPU
// in float32 it attends per sequence on the packed rows (attention_kernel.h), elsewhere over the
// padded grid. `score_bias` (undefined: none) is added to the scores before the softmax, in every path:
// [heads, layout.seq, layout.seq], entry (h, i, j) for query position i and key position j of a
// sequence (see ScoreBias in attention_kernel.h); it may require gradients.
torch::Tensor self_attention(const torch::Tensor& x, Linear& q, Linear& k, Linear& v, const PackedLinear* fused,
                             const TokenLayout& layout, int64_t n_heads, bool first_only, Dropout& dropout,
                             const torch::Tensor& score_bias = {});

// q, k and v fused into one [dim -> 3*dim] packed layer for inference (one larger product instead of
// three, one activation quantisation for int8); their plain weights are released. Per-output-channel
// int8 scales make the fused layer's weights exactly those of the three layers.
std::shared_ptr<const PackedLinear> fuse_qkv(Linear& q, Linear& k, Linear& v, Precision precision);

// "gelu" (erf form, Hugging Face's "gelu") or "relu"; anything else throws.
Activation activation_named(const std::string& name);
// The activation applied by hand, for a layer that is not packed with it fused.
torch::Tensor activate(const torch::Tensor& x, Activation activation);

// LayerNorm over the hidden size with the config's eps.
torch::nn::LayerNorm layer_norm(const ModelConfig& c);
// The word embeddings [vocab, hidden] with the padding row; initialise = false leaves the tensor
// uninitialised and untouched (no random draws, not yet resident) for weights loaded next.
torch::nn::Embedding word_embeddings(const ModelConfig& c, bool initialise);

// The rows of the sequences' position 0 when first_only, else x itself: the residual a block adds.
torch::Tensor residual_rows(const torch::Tensor& x, const TokenLayout& layout, bool first_only);

}  // namespace emotune::model
