// DistilBERT for sequence classification, as Hugging Face's modeling_distilbert.py computes it,
// with the same module and parameter names, so a state dict maps one to one:
//   distilbert.embeddings.{word_embeddings,position_embeddings,LayerNorm}
//   distilbert.transformer.layer.N.{attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin{1,2}, output_layer_norm}
//   pre_classifier, classifier
#pragma once

#include <torch/nn.h>

#include "model/config.h"

namespace emotune::model {

struct EmbeddingsImpl : torch::nn::Module {
  explicit EmbeddingsImpl(const DistilBertConfig& c);
  // input_ids [batch, seq] -> [batch, seq, dim]
  torch::Tensor forward(const torch::Tensor& input_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

struct MultiHeadSelfAttentionImpl : torch::nn::Module {
  explicit MultiHeadSelfAttentionImpl(const DistilBertConfig& c);
  // x [batch, seq, dim], attention_mask [batch, seq] (1 = token, 0 = padding)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attention_mask);

  int64_t n_heads, dim;
  torch::nn::Linear q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(MultiHeadSelfAttention);

struct FFNImpl : torch::nn::Module {
  explicit FFNImpl(const DistilBertConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear lin1{nullptr}, lin2{nullptr};
  torch::nn::Dropout dropout{nullptr};
  bool gelu;
};
TORCH_MODULE(FFN);

struct TransformerBlockImpl : torch::nn::Module {
  explicit TransformerBlockImpl(const DistilBertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attention_mask);

  MultiHeadSelfAttention attention{nullptr};
  torch::nn::LayerNorm sa_layer_norm{nullptr};
  FFN ffn{nullptr};
  torch::nn::LayerNorm output_layer_norm{nullptr};
};
TORCH_MODULE(TransformerBlock);

struct DistilBertModelImpl : torch::nn::Module {
  explicit DistilBertModelImpl(const DistilBertConfig& c);
  // Last hidden states [batch, seq, dim].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  Embeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};  // registered as transformer.layer
};
TORCH_MODULE(DistilBertModel);

struct DistilBertForSequenceClassificationImpl : torch::nn::Module {
  explicit DistilBertForSequenceClassificationImpl(const DistilBertConfig& c);
  // input_ids, attention_mask [batch, seq] (int64) -> logits [batch, num_labels]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  // Hugging Face's _init_weights: normal(0, initializer_range) for linear and embedding weights,
  // zero biases and padding row, LayerNorm at identity. Uses torch's global generator.
  void init_weights(double initializer_range);

  DistilBertConfig config;
  DistilBertModel distilbert{nullptr};
  torch::nn::Linear pre_classifier{nullptr}, classifier{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertForSequenceClassification);

}  // namespace emotune::model
