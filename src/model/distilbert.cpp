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

void read_config(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.hidden_size = config_field<int64_t>(j, "dim", 768, where);
  c.num_layers = config_field<int64_t>(j, "n_layers", 6, where);
  c.num_heads = config_field<int64_t>(j, "n_heads", 12, where);
  c.intermediate_size = config_field<int64_t>(j, "hidden_dim", 3072, where);
  c.hidden_dropout = config_field<double>(j, "dropout", 0.1, where);
  c.attention_dropout = config_field<double>(j, "attention_dropout", 0.1, where);
  c.classifier_dropout = config_field<double>(j, "seq_classif_dropout", 0.2, where);
  c.activation = config_field<std::string>(j, "activation", "gelu", where);
  c.layer_norm_eps = 1e-12;  // fixed in Hugging Face's DistilBERT
  c.type_vocab_size = 0;
  if (config_field<bool>(j, "sinusoidal_pos_embds", false, where))
    throw std::runtime_error(where + ": sinusoidal_pos_embds=true is not supported");
}

void write_config(const ModelConfig& c, nlohmann::json& j) {
  j["dim"] = c.hidden_size;
  j["n_layers"] = c.num_layers;
  j["n_heads"] = c.num_heads;
  j["hidden_dim"] = c.intermediate_size;
  j["dropout"] = c.hidden_dropout;
  j["attention_dropout"] = c.attention_dropout;
  j["seq_classif_dropout"] = c.classifier_dropout;
  j["activation"] = c.activation;
  j["sinusoidal_pos_embds"] = false;
}

SequenceClassifier make(const ModelConfig& c, bool initialise) {
  return std::make_shared<DistilBertForSequenceClassificationImpl>(c, initialise);
}

}  // namespace

const Family& distilbert_family() {
  static const Family family{"distilbert", "DistilBertForSequenceClassification", "DistilBertTokenizer", read_config, write_config, make};
  return family;
}

}  // namespace emotune::model
