// DistilBERT for sequence classification, as Hugging Face's modeling_distilbert.py computes it,
// with the same module and parameter names, so a state dict maps one to one:
//   distilbert.embeddings.{word_embeddings,position_embeddings,LayerNorm}
//   distilbert.transformer.layer.N.{attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin{1,2}, output_layer_norm}
//   pre_classifier, classifier
// config.json: dim, n_layers, n_heads, hidden_dim, dropout, attention_dropout, seq_classif_dropout,
// activation; LayerNorm eps is 1e-12.
#pragma once

#include <torch/nn.h>

#include "model/classifier.h"
#include "model/encoder.h"
#include "model/kernels.h"

namespace emotune::model {

struct Family;
const Family& distilbert_family();

namespace distilbert {

struct EmbeddingsImpl : torch::nn::Module {
  EmbeddingsImpl(const ModelConfig& c, bool initialise = true);
  // input_ids [batch, seq] -> packed [tokens, dim]
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout);
  // inputs_embeds [batch, seq, dim] in place of the word embeddings -> packed [tokens, dim]
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout);
  // The word vectors' rows, packed, plus position embeddings, then LayerNorm and dropout.
  torch::Tensor finish(const torch::Tensor& word_rows, const TokenLayout& layout);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

struct MultiHeadSelfAttentionImpl : torch::nn::Module {
  MultiHeadSelfAttentionImpl(const ModelConfig& c, bool initialise = true);
  // x packed [tokens, dim] -> [tokens, dim]; with first_only -> [batch, dim] (see self_attention).
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only = false);
  // Packed inference: q, k and v fused (see fuse_qkv), out_lin packed as it is.
  void pack(Precision precision);

  int64_t n_heads;
  Linear q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};
  std::shared_ptr<const PackedLinear> qkv;  // not a parameter: no Hugging Face name, never saved
  Dropout dropout{nullptr};
};
TORCH_MODULE(MultiHeadSelfAttention);

struct FFNImpl : torch::nn::Module {
  FFNImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& x);
  // Packed inference, with the activation fused into lin1's kernel.
  void pack(Precision precision);

  Linear lin1{nullptr}, lin2{nullptr};
  Dropout dropout{nullptr};
  Activation activation;
};
TORCH_MODULE(FFN);

struct TransformerBlockImpl : torch::nn::Module {
  TransformerBlockImpl(const ModelConfig& c, bool initialise = true);
  // x packed [tokens, dim] -> [tokens, dim]; with first_only -> [batch, dim], each sequence's
  // position-0 row only, the rest of the block never computed for the other rows.
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only = false);
  void pack(Precision precision);  // attention and FFN; a second call does nothing

  MultiHeadSelfAttention attention{nullptr};
  torch::nn::LayerNorm sa_layer_norm{nullptr};
  FFN ffn{nullptr};
  torch::nn::LayerNorm output_layer_norm{nullptr};
};
TORCH_MODULE(TransformerBlock);

struct DistilBertModelImpl : torch::nn::Module {
  DistilBertModelImpl(const ModelConfig& c, bool initialise = true);
  // Last hidden states of the real tokens, packed [tokens, dim] in layout order; with first_only, of
  // each sequence's position 0 only, [batch, dim]. The classifier reads nothing else, and in the last
  // block no other row feeds position 0, so that block's attention output, out_lin, FFN and LayerNorms
  // run on one row per text (about a seventh of a 6-layer model's products) with the same results.
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only = false);
  // The same from the embeddings' output (packed rows).
  torch::Tensor encode(torch::Tensor h, const TokenLayout& layout, bool first_only = false);

  Embeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};  // registered as transformer.layer
};
TORCH_MODULE(DistilBertModel);

}  // namespace distilbert

struct DistilBertForSequenceClassificationImpl : SequenceClassifierImpl {
  explicit DistilBertForSequenceClassificationImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) override;
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask) override;
  torch::Tensor encode(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) override {
    return distilbert->forward(input_ids, layout, first_only);
  }
  torch::nn::Embedding input_embeddings() override { return distilbert->embeddings->word_embeddings; }
  // Logits from the embeddings' output.
  torch::Tensor classify(const torch::Tensor& embedded, const TokenLayout& layout);

  std::string base_model_prefix() const override { return "distilbert"; }
  std::size_t num_blocks() const override { return distilbert->layer->size(); }
  std::string block_prefix() const override { return "distilbert.transformer.layer."; }
  void pack_block(std::size_t i, Precision precision) override;

  distilbert::DistilBertModel distilbert{nullptr};
  Linear pre_classifier{nullptr}, classifier{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertForSequenceClassification);

}  // namespace emotune::model
