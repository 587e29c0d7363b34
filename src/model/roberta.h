// RoBERTa for sequence classification, as Hugging Face's modeling_roberta.py computes it
// (RobertaForSequenceClassification), with the same module and parameter names:
//   roberta.embeddings.{word_embeddings,position_embeddings,token_type_embeddings,LayerNorm}
//   roberta.encoder.layer.N.*            (BERT's layer: modeling_roberta copies it)
//   classifier.dense, classifier.out_proj (the head reads <s>; no pooler)
// Positions count from padding_idx + 1 over the non-padding tokens (create_position_ids_from_input_ids),
// so max_position_embeddings 514 holds 512 tokens. config.json: BERT's fields; one token type.
#pragma once

#include <torch/nn.h>

#include "model/bert.h"
#include "model/classifier.h"
#include "model/encoder.h"
#include "model/kernels.h"

namespace emotune::model {

struct Family;
const Family& roberta_family();

namespace roberta {

struct RobertaEmbeddingsImpl : torch::nn::Module {
  RobertaEmbeddingsImpl(const ModelConfig& c, bool initialise = true);
  // input_ids [batch, seq] -> packed [tokens, hidden]
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout);
  // inputs_embeds [batch, seq, hidden] in place of the word embeddings -> packed [tokens, hidden];
  // positions padding_idx + 1, + 2, ... of each sequence (Hugging Face's
  // create_position_ids_from_inputs_embeds).
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout);
  // Packed word rows and position ids, plus token type 0, then LayerNorm and dropout.
  torch::Tensor finish(const torch::Tensor& word_rows, const torch::Tensor& position_rows);

  int64_t padding_idx;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaEmbeddings);

struct RobertaModelImpl : torch::nn::Module {
  RobertaModelImpl(const ModelConfig& c, bool initialise = true);
  // As BertModel::forward: packed last hidden states, or with first_only each sequence's <s> row.
  torch::Tensor forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only = false);
  // The same from the embeddings' output (packed rows).
  torch::Tensor encode(const torch::Tensor& embedded, const TokenLayout& layout, bool first_only = false);

  RobertaEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};  // registered as encoder.layer; bert::BertLayer each
};
TORCH_MODULE(RobertaModel);

// dropout, dense, tanh, dropout, out_proj over the <s> rows [batch, hidden].
struct RobertaClassificationHeadImpl : torch::nn::Module {
  RobertaClassificationHeadImpl(const ModelConfig& c, int64_t num_labels, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& first_rows);

  Linear dense{nullptr}, out_proj{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(RobertaClassificationHead);

}  // namespace roberta

struct RobertaForSequenceClassificationImpl : SequenceClassifierImpl {
  explicit RobertaForSequenceClassificationImpl(const ModelConfig& c, bool initialise = true);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) override;
  torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask) override;
  torch::Tensor encode(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) override {
    return roberta->forward(input_ids, layout, first_only);
  }
  torch::nn::Embedding input_embeddings() override { return roberta->embeddings->word_embeddings; }
  // Logits from the embeddings' output.
  torch::Tensor classify(const torch::Tensor& embedded, const TokenLayout& layout);

  std::string base_model_prefix() const override { return "roberta"; }
  std::size_t num_blocks() const override { return roberta->layer->size(); }
  std::string block_prefix() const override { return "roberta.encoder.layer."; }
  void pack_block(std::size_t i, Precision precision) override;

  roberta::RobertaModel roberta{nullptr};
  roberta::RobertaClassificationHead classifier{nullptr};
};
TORCH_MODULE(RobertaForSequenceClassification);

}  // namespace emotune::model
