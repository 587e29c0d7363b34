#include "model/bert.h"

#include "model/family.h"

namespace emotune::model {

namespace nn = torch::nn;

namespace bert {

BertEmbeddingsImpl::BertEmbeddingsImpl(const ModelConfig& c, bool initialise) {
  TORCH_CHECK(c.type_vocab_size > 0, "BERT needs type_vocab_size > 0");
  word_embeddings = register_module("word_embeddings", model::word_embeddings(c, initialise));
  position_embeddings =
      register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", layer_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
  return finish(word_embeddings(layout.pack(input_ids.reshape({-1}))), layout);
}

torch::Tensor BertEmbeddingsImpl::forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout) {
  return finish(layout.pack(inputs_embeds.reshape({-1, inputs_embeds.size(-1)})), layout);
}

torch::Tensor BertEmbeddingsImpl::finish(const torch::Tensor& word_rows, const TokenLayout& layout) {
  // Every token has type 0, so each row adds type embedding 0; summed in Hugging Face's order.
  auto x = word_rows + token_type_embeddings->weight[0];
  x = x + position_embeddings(layout.positions());
  return dropout(LayerNorm(x));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const ModelConfig& c, bool initialise)
    : num_attention_heads(c.num_heads) {
  const int64_t dim = c.hidden_size;
  query = register_module("query", Linear(dim, dim, initialise));
  key = register_module("key", Linear(dim, dim, initialise));
  value = register_module("value", Linear(dim, dim, initialise));
  dropout = register_module("dropout", Dropout(c.attention_dropout));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only) {
  return self_attention(x, query, key, value, qkv.get(), layout, num_attention_heads, first_only, dropout);
}

BertResidualOutputImpl::BertResidualOutputImpl(const ModelConfig& c, int64_t in_features, bool initialise) {
  dense = register_module("dense", Linear(in_features, c.hidden_size, initialise));
  LayerNorm = register_module("LayerNorm", layer_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& h, const torch::Tensor& input) {
  return LayerNorm(dropout(dense(h)) + input);
}

BertAttentionImpl::BertAttentionImpl(const ModelConfig& c, bool initialise) {
  self = register_module("self", BertSelfAttention(c, initialise));
  output = register_module("output", BertResidualOutput(c, c.hidden_size, initialise));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only) {
  return output(self(x, layout, first_only), residual_rows(x, layout, first_only));
}

BertIntermediateImpl::BertIntermediateImpl(const ModelConfig& c, bool initialise)
    : activation(activation_named(c.activation)) {
  dense = register_module("dense", Linear(c.hidden_size, c.intermediate_size, initialise));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& x) {
  auto h = dense(x);
  return dense->packed() ? h : activate(h, activation);
}

BertLayerImpl::BertLayerImpl(const ModelConfig& c, bool initialise) {
  attention = register_module("attention", BertAttention(c, initialise));
  intermediate = register_module("intermediate", BertIntermediate(c, initialise));
  output = register_module("output", BertResidualOutput(c, c.intermediate_size, initialise));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only) {
  const auto a = attention(x, layout, first_only);
  return output(intermediate(a), a);
}

void BertLayerImpl::pack(Precision precision) {
  auto& self = attention->self;
  if (self->qkv) return;
  self->qkv = fuse_qkv(self->query, self->key, self->value, precision);
  attention->output->dense->pack(precision);
  intermediate->dense->pack(precision, intermediate->activation);
  output->dense->pack(precision);
}

nn::ModuleList register_encoder(nn::Module& model, const ModelConfig& c, bool initialise) {
  auto encoder = std::make_shared<nn::Module>();
  nn::ModuleList layer;
  for (int64_t i = 0; i < c.num_layers; ++i) layer->push_back(BertLayer(c, initialise));
  encoder->register_module("layer", layer);
  model.register_module("encoder", encoder);
  return layer;
}

torch::Tensor run_encoder(nn::ModuleList& layer, torch::Tensor h, const TokenLayout& layout, bool first_only) {
  const auto n = layer->size();
  for (std::size_t i = 0; i < n; ++i) h = layer[i]->as<BertLayer>()->forward(h, layout, first_only && i + 1 == n);
  return first_only && n == 0 ? residual_rows(h, layout, true) : h;
}

BertModelImpl::BertModelImpl(const ModelConfig& c, bool initialise) {
  embeddings = register_module("embeddings", BertEmbeddings(c, initialise));
  layer = register_encoder(*this, c, initialise);
  auto pooler = std::make_shared<nn::Module>();
  pooler_dense = pooler->register_module("dense", Linear(c.hidden_size, c.hidden_size, initialise));
  register_module("pooler", pooler);
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) {
  return encode(embeddings(input_ids, layout), layout, first_only);
}

torch::Tensor BertModelImpl::encode(const torch::Tensor& embedded, const TokenLayout& layout, bool first_only) {
  return run_encoder(layer, embedded, layout, first_only);
}

torch::Tensor BertModelImpl::pool(const torch::Tensor& first_rows) { return torch::tanh(pooler_dense(first_rows)); }

}  // namespace bert

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const ModelConfig& c, bool initialise)
    : SequenceClassifierImpl(c) {
  const auto num_labels = static_cast<int64_t>(std::max<std::size_t>(c.labels.size(), 1));
  bert = register_module("bert", bert::BertModel(c, initialise));
  dropout = register_module("dropout", Dropout(c.classifier_dropout));
  classifier = register_module("classifier", Linear(c.hidden_size, num_labels, initialise));
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(bert->embeddings(input_ids, layout), layout);
}

torch::Tensor BertForSequenceClassificationImpl::forward_embeds(const torch::Tensor& inputs_embeds,
                                                                const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(bert->embeddings->forward_embeds(inputs_embeds, layout), layout);
}

torch::Tensor BertForSequenceClassificationImpl::classify(const torch::Tensor& embedded, const TokenLayout& layout) {
  // The pooler reads position 0 (Hugging Face's hidden[:, 0]) and nothing else.
  return classifier(dropout(bert->pool(bert->encode(embedded, layout, /*first_only=*/true))));
}

void BertForSequenceClassificationImpl::pack_block(std::size_t i, Precision precision) {
  bert->layer[i]->as<bert::BertLayer>()->pack(precision);
}

namespace {

SequenceClassifier make(const ModelConfig& c, bool initialise) {
  return std::make_shared<BertForSequenceClassificationImpl>(c, initialise);
}

}  // namespace

const Family& bert_family() {
  static const Family family{bert_family_config(), make};
  return family;
}

}  // namespace emotune::model
