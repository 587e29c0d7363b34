// BERT for sequence classification, as Hugging Face's modeling_bert.py computes it
// (BertForSequenceClassification), with the same module and parameter names:
//   bert.embeddings.{word_embeddings,position_embeddings,token_type_embeddings,LayerNorm}
//   bert.encoder.layer.N.attention.self.{query,key,value}
//   bert.encoder.layer.N.attention.output.{dense,LayerNorm}
//   bert.encoder.layer.N.intermediate.dense, bert.encoder.layer.N.output.{dense,LayerNorm}
//   bert.pooler.dense, classifier
// config.json: hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
// hidden_dropout_prob, attention_probs_dropout_prob, classifier_dropout, layer_norm_eps,
// type_vocab_size; absolute positions only. Every token has token type 0.
#pragma once

#include <torch/nn.h>

#include "model/classifier.h"
#include "model/encoder.h"
#include "model/kernels.h"

namespace emotune::model {

struct Family;
const Family& bert_family();

namespace bert {

// config.json's BERT fields (RobertaConfig shares them).

struct BertEmbeddingsImpl : torch::nn::Module {
  BertEmbeddingsImpl(const ModelConfig& c, bool initialise = true);
  // input_ids [batch, seq] -> packed [tokens, hidden]
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout);
  // inputs_embeds [batch, seq, hidden] in place of the word embeddings -> packed [tokens, hidden]
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout);
  // The word vectors' rows, packed, plus token type and position embeddings, then LayerNorm and dropout.
  torch::Tensor finish(const torch::Tensor& word_rows, const TokenLayout& layout);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

struct BertSelfAttentionImpl : torch::nn::Module {
  BertSelfAttentionImpl(const ModelConfig& c, bool initialise = true);
  // Context rows before the output projection (see self_attention).
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only);

  int64_t num_attention_heads;
  Linear query{nullptr}, key{nullptr}, value{nullptr};
  std::shared_ptr<const PackedLinear> qkv;  // packed inference only; never saved
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// dense, dropout, then LayerNorm over the sum with the input: BertSelfOutput and BertOutput alike.
struct BertResidualOutputImpl : torch::nn::Module {
  BertResidualOutputImpl(const ModelConfig& c, int64_t in_features, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& input);

  Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

struct BertAttentionImpl : torch::nn::Module {
  BertAttentionImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only);

  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertIntermediateImpl : torch::nn::Module {
  BertIntermediateImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& x);

  Linear dense{nullptr};
  Activation activation;
};
TORCH_MODULE(BertIntermediate);

struct BertLayerImpl : torch::nn::Module {
  BertLayerImpl(const ModelConfig& c, bool initialise = true);
  // x packed [tokens, hidden] -> [tokens, hidden]; with first_only -> [batch, hidden], each
  // sequence's position-0 row only (see DistilBertModel::forward for why that is exact).
  torch::Tensor forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only = false);
  // Packed inference: q/k/v fused, the activation fused into intermediate.dense; a second call does nothing.
  void pack(Precision precision);

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

// The encoder of BERT and the models built on its layers (RoBERTa): c.num_layers BertLayers registered
// in `model` as encoder.layer.N; returns the list.
torch::nn::ModuleList register_encoder(torch::nn::Module& model, const ModelConfig& c, bool initialise);
// Runs those layers over packed rows; with first_only the last layer computes each sequence's
// position-0 row only ([batch, hidden]).
torch::Tensor run_encoder(torch::nn::ModuleList& layer, torch::Tensor h, const TokenLayout& layout, bool first_only);

struct BertModelImpl : torch::nn::Module {
  BertModelImpl(const ModelConfig& c, bool initialise = true);
  // Last hidden states of the real tokens, packed [tokens, hidden]; with first_only, of each
  // sequence's position 0 only, [batch, hidden] (the last layer then computes those rows alone; see
  // DistilBertModel::forward for why that is exact).
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only = false);
  // The same from the embeddings' output (packed rows).
  torch::Tensor encode(const torch::Tensor& embedded, const TokenLayout& layout, bool first_only = false);
  // The pooler: tanh(dense(h)) of the position-0 rows [batch, hidden].
  torch::Tensor pool(const torch::Tensor& first_rows);

  BertEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};  // registered as encoder.layer
  Linear pooler_dense{nullptr};          // registered as pooler.dense
};
TORCH_MODULE(BertModel);

}  // namespace bert

struct BertForSequenceClassificationImpl : SequenceClassifierImpl {
  explicit BertForSequenceClassificationImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) override;
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask) override;
  torch::Tensor encode(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) override {
    return bert->forward(input_ids, layout, first_only);
  }
  torch::nn::Embedding input_embeddings() override { return bert->embeddings->word_embeddings; }
  // Logits from the embeddings' output.
  torch::Tensor classify(const torch::Tensor& embedded, const TokenLayout& layout);

  std::string base_model_prefix() const override { return "bert"; }
  std::size_t num_blocks() const override { return bert->layer->size(); }
  std::string block_prefix() const override { return "bert.encoder.layer."; }
  void pack_block(std::size_t i, Precision precision) override;

  bert::BertModel bert{nullptr};
  Dropout dropout{nullptr};
  Linear classifier{nullptr};
};
TORCH_MODULE(BertForSequenceClassification);

}  // namespace emotune::model
