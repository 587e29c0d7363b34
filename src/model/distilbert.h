// DistilBERT for sequence classification, as Hugging Face's modeling_distilbert.py computes it,
// with the same module and parameter names, so a state dict maps one to one:
//   distilbert.embeddings.{word_embeddings,position_embeddings,LayerNorm}
//   distilbert.transformer.layer.N.{attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin{1,2}, output_layer_norm}
//   pre_classifier, classifier
#pragma once

#include <torch/nn.h>

#include "model/config.h"
#include "model/linear.h"

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

  int64_t batch, seq, tokens;
  torch::Tensor mask;   // [batch, seq], 1 = token
  torch::Tensor index;  // [tokens] flat grid position of each packed row
  torch::Tensor first;  // [batch] packed row of each sequence's position 0 (the [CLS] token)
  torch::Tensor lengths;  // [batch] real tokens per sequence
  bool dense;           // no padding at all: packing is the identity and costs nothing
};

struct EmbeddingsImpl : torch::nn::Module {
  EmbeddingsImpl(const DistilBertConfig& c, bool initialise = true);
  // input_ids [batch, seq] -> packed [tokens, dim]
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

struct MultiHeadSelfAttentionImpl : torch::nn::Module {
  MultiHeadSelfAttentionImpl(const DistilBertConfig& c, bool initialise = true);
  // x packed [tokens, dim] -> [tokens, dim]; with first_only, only each sequence's position 0 attends
  // (keys and values still come from every token): -> [batch, dim].
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only = false);

  // Packed inference: q, k and v as one fused [dim -> 3*dim] layer (one larger product instead of
  // three, one activation quantisation for int8); out_lin packed as it is.
  void pack(Precision precision);

  int64_t n_heads, dim;
  Linear q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};
  std::shared_ptr<const PackedLinear> qkv;  // not a parameter: no Hugging Face name, never saved
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(MultiHeadSelfAttention);

struct FFNImpl : torch::nn::Module {
  FFNImpl(const DistilBertConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& x);
  // Packed inference, with the activation fused into lin1's kernel.
  void pack(Precision precision);

  Linear lin1{nullptr}, lin2{nullptr};
  torch::nn::Dropout dropout{nullptr};
  bool gelu;
};
TORCH_MODULE(FFN);

struct TransformerBlockImpl : torch::nn::Module {
  TransformerBlockImpl(const DistilBertConfig& c, bool initialise = true);
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
  DistilBertModelImpl(const DistilBertConfig& c, bool initialise = true);
  // Last hidden states of the real tokens, packed [tokens, dim] in layout order; with first_only, of
  // each sequence's position 0 only, [batch, dim]. The classifier reads nothing else, and in the last
  // block no other row feeds position 0, so that block's attention output, out_lin, FFN and LayerNorms
  // run on one row per text (about a seventh of a 6-layer model's products) with the same results.
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only = false);

  Embeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};  // registered as transformer.layer
};
TORCH_MODULE(DistilBertModel);

struct DistilBertForSequenceClassificationImpl : torch::nn::Module {
  // initialise = false leaves the linear layers' and the word embeddings' tensors uninitialised (not
  // even touched), for a model whose weights are loaded next; the small ones are initialised anyway.
  explicit DistilBertForSequenceClassificationImpl(const DistilBertConfig& c, bool initialise = true);
  // input_ids, attention_mask [batch, seq] (int64) -> logits [batch, num_labels]
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  // Hugging Face's _init_weights: normal(0, initializer_range) for linear and embedding weights,
  // zero biases and padding row, LayerNorm at identity. Uses torch's global generator. With `only`,
  // just the modules holding one of those parameter names.
  void init_weights(double initializer_range, const std::vector<std::string>* only = nullptr);

  // CPU inference from here on: every linear layer packed for oneDNN (model/packed_linear.h), the
  // encoder's in `precision` (Int8: dynamic int8), the small head in float. The plain weights are
  // released, so the model can no longer train or be saved.
  void pack_for_inference(Precision precision);

  DistilBertConfig config;
  DistilBertModel distilbert{nullptr};
  Linear pre_classifier{nullptr}, classifier{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertForSequenceClassification);

}  // namespace emotune::model
