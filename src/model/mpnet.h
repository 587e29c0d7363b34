// MPNet for sequence classification, as Hugging Face's modeling_mpnet.py computes it
// (MPNetForSequenceClassification), with the same module and parameter names:
//   mpnet.embeddings.{word_embeddings,position_embeddings,LayerNorm}    (no token types)
//   mpnet.encoder.relative_attention_bias                                ([buckets, heads], all layers share it)
//   mpnet.encoder.layer.N.attention.attn.{q,k,v,o}, mpnet.encoder.layer.N.attention.LayerNorm
//   mpnet.encoder.layer.N.intermediate.dense, mpnet.encoder.layer.N.output.{dense,LayerNorm}
//   classifier.dense, classifier.out_proj (the head reads <s>; no pooler: a base checkpoint's
//   pooler.* is reported unused)
// Positions count from padding_idx + 1 as RoBERTa's. Every layer adds one relative-position bias to
// its attention scores, computed once per forward from the key's distance to the query: 32 buckets
// (half per direction, exact below 8, logarithmic up to 128, the last bucket beyond), looked up in
// relative_attention_bias. config.json: BERT's size, dropout and activation fields without
// type_vocab_size and classifier_dropout, plus relative_attention_num_buckets.
#pragma once

#include <torch/nn.h>

#include "model/bert.h"
#include "model/classifier.h"
#include "model/encoder.h"
#include "model/kernels.h"
#include "model/roberta.h"

namespace emotune::model {

struct Family;
const Family& mpnet_family();

namespace mpnet {

struct MPNetEmbeddingsImpl : torch::nn::Module {
  MPNetEmbeddingsImpl(const ModelConfig& c, bool initialise = true);
  // input_ids [batch, seq] -> packed [tokens, hidden]
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout);
  // inputs_embeds [batch, seq, hidden] in place of the word rows -> packed [tokens, hidden]
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout);

  int64_t padding_idx;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(MPNetEmbeddings);

// q, k, v and the output projection o of one layer's attention.
struct MPNetSelfAttentionImpl : torch::nn::Module {
  MPNetSelfAttentionImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only,
                        const torch::Tensor& position_bias);

  int64_t num_attention_heads;
  Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  std::shared_ptr<const PackedLinear> qkv;  // packed inference only; never saved
  Dropout dropout{nullptr};
};
TORCH_MODULE(MPNetSelfAttention);

// LayerNorm(dropout(attn(x)) + x)
struct MPNetAttentionImpl : torch::nn::Module {
  MPNetAttentionImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only,
                        const torch::Tensor& position_bias);

  MPNetSelfAttention attn{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(MPNetAttention);

struct MPNetLayerImpl : torch::nn::Module {
  MPNetLayerImpl(const ModelConfig& c, bool initialise = true);
  // As BertLayer::forward, with the relative-position bias [heads, seq, seq] added to the scores.
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only,
                        const torch::Tensor& position_bias);
  // Packed inference: q/k/v fused, the activation fused into intermediate.dense; a second call does nothing.
  void pack(Precision precision);

  MPNetAttention attention{nullptr};
  bert::BertIntermediate intermediate{nullptr};  // MPNetIntermediate: the same dense + activation
  bert::BertResidualOutput output{nullptr};      // MPNetOutput: the same dense, dropout, LayerNorm
};
TORCH_MODULE(MPNetLayer);

// Hugging Face's relative_position_bucket: the bucket of each key position j seen from query position
// i, for i, j < seq -> [seq, seq] int64, computed with the same tensor operations (so float rounding
// at the logarithmic boundaries falls the same way).
torch::Tensor relative_position_buckets(int64_t seq, int64_t num_buckets = 32, int64_t max_distance = 128);

struct MPNetModelImpl : torch::nn::Module {
  MPNetModelImpl(const ModelConfig& c, bool initialise = true);
  // As BertModel::forward: packed last hidden states, or with first_only each sequence's <s> row.
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only = false);
  // The same from the embeddings' output (packed rows).
  torch::Tensor encode(const torch::Tensor& embedded, const TokenLayout& layout, bool first_only = false);
  // The score bias every layer adds: relative_attention_bias over the buckets, [heads, seq, seq].
  torch::Tensor position_bias(const TokenLayout& layout);

  MPNetEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};                  // registered as encoder.layer
  torch::nn::Embedding relative_attention_bias{nullptr};  // registered as encoder.relative_attention_bias
};
TORCH_MODULE(MPNetModel);

}  // namespace mpnet

struct MPNetForSequenceClassificationImpl : SequenceClassifierImpl {
  explicit MPNetForSequenceClassificationImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) override;
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask) override;
  torch::Tensor encode(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) override {
    return mpnet->forward(input_ids, layout, first_only);
  }
  torch::nn::Embedding input_embeddings() override { return mpnet->embeddings->word_embeddings; }
  // Logits from the embeddings' output.
  torch::Tensor classify(const torch::Tensor& embedded, const TokenLayout& layout);

  std::string base_model_prefix() const override { return "mpnet"; }
  std::size_t num_blocks() const override { return mpnet->layer->size(); }
  std::string block_prefix() const override { return "mpnet.encoder.layer."; }
  void pack_block(std::size_t i, Precision precision) override;

  mpnet::MPNetModel mpnet{nullptr};
  // MPNetClassificationHead computes RoBERTa's head (dropout, dense, tanh, dropout, out_proj) under
  // the same names; its dropout is hidden_dropout_prob (classifier_dropout here).
  roberta::RobertaClassificationHead classifier{nullptr};
};
TORCH_MODULE(MPNetForSequenceClassification);

}  // namespace emotune::model
