#include "model/distilbert.h"

#include "model/family.h"

namespace emotune::model {

namespace nn = torch::nn;

namespace distilbert {

EmbeddingsImpl::EmbeddingsImpl(const ModelConfig& c, bool initialise) {
  word_embeddings = register_module("word_embeddings", model::word_embeddings(c, initialise));
  position_embeddings =
      register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.hidden_size));
  LayerNorm = register_module("LayerNorm", layer_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor EmbeddingsImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
  return finish(word_embeddings(layout.pack(input_ids.reshape({-1}))), layout);
}

torch::Tensor EmbeddingsImpl::forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout) {
  return finish(layout.pack(inputs_embeds.reshape({-1, inputs_embeds.size(-1)})), layout);
}

torch::Tensor EmbeddingsImpl::finish(const torch::Tensor& word_rows, const TokenLayout& layout) {
  return dropout(LayerNorm(word_rows + position_embeddings(layout.positions())));
}

MultiHeadSelfAttentionImpl::MultiHeadSelfAttentionImpl(const ModelConfig& c, bool initialise)
    : n_heads(c.num_heads) {
  const int64_t dim = c.hidden_size;
  q_lin = register_module("q_lin", Linear(dim, dim, initialise));
  k_lin = register_module("k_lin", Linear(dim, dim, initialise));
  v_lin = register_module("v_lin", Linear(dim, dim, initialise));
  out_lin = register_module("out_lin", Linear(dim, dim, initialise));
  dropout = register_module("dropout", Dropout(c.attention_dropout));
}

torch::Tensor MultiHeadSelfAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout,
                                                  bool first_only) {
  return out_lin(self_attention(x, q_lin, k_lin, v_lin, qkv.get(), layout, n_heads, first_only, dropout));
}

void MultiHeadSelfAttentionImpl::pack(Precision precision) {
  if (qkv) return;
  qkv = fuse_qkv(q_lin, k_lin, v_lin, precision);
  out_lin->pack(precision);
}

FFNImpl::FFNImpl(const ModelConfig& c, bool initialise) : activation(activation_named(c.activation)) {
  lin1 = register_module("lin1", Linear(c.hidden_size, c.intermediate_size, initialise));
  lin2 = register_module("lin2", Linear(c.intermediate_size, c.hidden_size, initialise));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor FFNImpl::forward(const torch::Tensor& x) {
  auto h = lin1(x);
  if (!lin1->packed()) h = activate(h, activation);
  return dropout(lin2(h));
}

void FFNImpl::pack(Precision precision) {
  lin1->pack(precision, activation);
  lin2->pack(precision);
}

TransformerBlockImpl::TransformerBlockImpl(const ModelConfig& c, bool initialise) {
  attention = register_module("attention", MultiHeadSelfAttention(c, initialise));
  sa_layer_norm = register_module("sa_layer_norm", layer_norm(c));
  ffn = register_module("ffn", FFN(c, initialise));
  output_layer_norm = register_module("output_layer_norm", layer_norm(c));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only) {
  auto sa = sa_layer_norm(attention(x, layout, first_only) + residual_rows(x, layout, first_only));
  return output_layer_norm(ffn(sa) + sa);
}

void TransformerBlockImpl::pack(Precision precision) {
  if (attention->qkv) return;
  attention->pack(precision);
  ffn->pack(precision);
}

DistilBertModelImpl::DistilBertModelImpl(const ModelConfig& c, bool initialise) {
  embeddings = register_module("embeddings", Embeddings(c, initialise));
  auto transformer = std::make_shared<nn::Module>();
  layer = nn::ModuleList();
  for (int64_t i = 0; i < c.num_layers; ++i) layer->push_back(TransformerBlock(c, initialise));
  transformer->register_module("layer", layer);
  register_module("transformer", transformer);
}

torch::Tensor DistilBertModelImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout,
                                           bool first_only) {
  return encode(embeddings(input_ids, layout), layout, first_only);
}

torch::Tensor DistilBertModelImpl::encode(torch::Tensor h, const TokenLayout& layout, bool first_only) {
  const auto n = layer->size();
  for (std::size_t i = 0; i < n; ++i)
    h = layer[i]->as<TransformerBlock>()->forward(h, layout, first_only && i + 1 == n);
  return first_only && n == 0 ? residual_rows(h, layout, true) : h;
}

}  // namespace distilbert

DistilBertForSequenceClassificationImpl::DistilBertForSequenceClassificationImpl(const ModelConfig& c,
                                                                                 bool initialise)
    : SequenceClassifierImpl(c) {
  const auto num_labels = static_cast<int64_t>(std::max<std::size_t>(c.labels.size(), 1));
  distilbert = register_module("distilbert", distilbert::DistilBertModel(c, initialise));
  pre_classifier = register_module("pre_classifier", Linear(c.hidden_size, c.hidden_size, initialise));
  classifier = register_module("classifier", Linear(c.hidden_size, num_labels, initialise));
  dropout = register_module("dropout", Dropout(c.classifier_dropout));
}

torch::Tensor DistilBertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                               const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(distilbert->embeddings(input_ids, layout), layout);
}

torch::Tensor DistilBertForSequenceClassificationImpl::forward_embeds(const torch::Tensor& inputs_embeds,
                                                                      const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(distilbert->embeddings->forward_embeds(inputs_embeds, layout), layout);
}

torch::Tensor DistilBertForSequenceClassificationImpl::classify(const torch::Tensor& embedded,
                                                                const TokenLayout& layout) {
  // the [CLS] position, Hugging Face's hidden[:, 0]
  auto pooled = distilbert->encode(embedded, layout, /*first_only=*/true);
  pooled = dropout(torch::relu(pre_classifier(pooled)));
  return classifier(pooled);
}

void DistilBertForSequenceClassificationImpl::pack_block(std::size_t i, Precision precision) {
  distilbert->layer[i]->as<distilbert::TransformerBlock>()->pack(precision);
}

namespace {

SequenceClassifier make(const ModelConfig& c, bool initialise) {
  return std::make_shared<DistilBertForSequenceClassificationImpl>(c, initialise);
}

}  // namespace

const Family& distilbert_family() {
  static const Family family{distilbert_family_config(), make};
  return family;
}

}  // namespace emotune::model
