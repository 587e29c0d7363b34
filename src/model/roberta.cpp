#include "model/roberta.h"

#include "model/family.h"

namespace emotune::model {

namespace nn = torch::nn;

namespace roberta {

RobertaEmbeddingsImpl::RobertaEmbeddingsImpl(const ModelConfig& c, bool initialise) : padding_idx(c.pad_token_id) {
  word_embeddings = register_module("word_embeddings", model::word_embeddings(c, initialise));
  position_embeddings = register_module(
      "position_embeddings",
      nn::Embedding(nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size).padding_idx(padding_idx)));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", layer_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor RobertaEmbeddingsImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
  // Hugging Face numbers the non-padding tokens padding_idx + 1, + 2, ... and gives padding padding_idx.
  const auto not_pad = input_ids.ne(padding_idx).to(torch::kInt64);
  const auto position_ids = torch::cumsum(not_pad, 1) * not_pad + padding_idx;
  return finish(word_embeddings(layout.pack(input_ids.reshape({-1}))), layout.pack(position_ids.reshape({-1})));
}

torch::Tensor RobertaEmbeddingsImpl::forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout) {
  return finish(layout.pack(inputs_embeds.reshape({-1, inputs_embeds.size(-1)})), layout.positions() + (padding_idx + 1));
}

torch::Tensor RobertaEmbeddingsImpl::finish(const torch::Tensor& word_rows, const torch::Tensor& position_rows) {
  auto x = word_rows + token_type_embeddings->weight[0];
  x = x + position_embeddings(position_rows);
  return dropout(LayerNorm(x));
}

RobertaModelImpl::RobertaModelImpl(const ModelConfig& c, bool initialise) {
  embeddings = register_module("embeddings", RobertaEmbeddings(c, initialise));
  layer = bert::register_encoder(*this, c, initialise);
}

torch::Tensor RobertaModelImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) {
  return encode(embeddings(input_ids, layout), layout, first_only);
}

torch::Tensor RobertaModelImpl::encode(const torch::Tensor& embedded, const TokenLayout& layout, bool first_only) {
  return bert::run_encoder(layer, embedded, layout, first_only);
}

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(const ModelConfig& c, int64_t num_labels, bool initialise) {
  dense = register_module("dense", Linear(c.hidden_size, c.hidden_size, initialise));
  dropout = register_module("dropout", Dropout(c.classifier_dropout));
  out_proj = register_module("out_proj", Linear(c.hidden_size, num_labels, initialise));
}

torch::Tensor RobertaClassificationHeadImpl::forward(const torch::Tensor& first_rows) {
  return out_proj(dropout(torch::tanh(dense(dropout(first_rows)))));
}

}  // namespace roberta

RobertaForSequenceClassificationImpl::RobertaForSequenceClassificationImpl(const ModelConfig& c, bool initialise)
    : SequenceClassifierImpl(c) {
  const auto num_labels = static_cast<int64_t>(std::max<std::size_t>(c.labels.size(), 1));
  roberta = register_module("roberta", roberta::RobertaModel(c, initialise));
  classifier = register_module("classifier", roberta::RobertaClassificationHead(c, num_labels, initialise));
}

torch::Tensor RobertaForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                            const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(roberta->embeddings(input_ids, layout), layout);
}

torch::Tensor RobertaForSequenceClassificationImpl::forward_embeds(const torch::Tensor& inputs_embeds,
                                                                   const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(roberta->embeddings->forward_embeds(inputs_embeds, layout), layout);
}

torch::Tensor RobertaForSequenceClassificationImpl::classify(const torch::Tensor& embedded, const TokenLayout& layout) {
  // The head reads position 0 (<s>, Hugging Face's features[:, 0, :]) and nothing else.
  return classifier(roberta->encode(embedded, layout, /*first_only=*/true));
}

void RobertaForSequenceClassificationImpl::pack_block(std::size_t i, Precision precision) {
  roberta->layer[i]->as<bert::BertLayer>()->pack(precision);
}

namespace {

SequenceClassifier make(const ModelConfig& c, bool initialise) {
  return std::make_shared<RobertaForSequenceClassificationImpl>(c, initialise);
}

}  // namespace

const Family& roberta_family() {
  static const Family family{roberta_family_config(), make};
  return family;
}

}  // namespace emotune::model
