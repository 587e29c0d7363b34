#include "model/mpnet.h"

#include <cmath>

#include "model/family.h"

namespace emotune::model {

namespace nn = torch::nn;

namespace {

// transformers computes the buckets with 32 whatever the config says (compute_position_bias's
// default); mpnet_config.cpp refuses a table with fewer rows.
constexpr int64_t kBuckets = 32;
constexpr int64_t kMaxDistance = 128;

}  // namespace

namespace mpnet {

MPNetEmbeddingsImpl::MPNetEmbeddingsImpl(const ModelConfig& c, bool initialise) : padding_idx(c.pad_token_id) {
  word_embeddings = register_module("word_embeddings", model::word_embeddings(c, initialise));
  position_embeddings = register_module(
      "position_embeddings",
      nn::Embedding(nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size).padding_idx(padding_idx)));
  LayerNorm = register_module("LayerNorm", layer_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor MPNetEmbeddingsImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
  // create_position_ids_from_input_ids: padding_idx + 1, + 2, ... over the non-padding tokens.
  const auto not_pad = input_ids.ne(padding_idx).to(torch::kInt64);
  const auto position_ids = torch::cumsum(not_pad, 1) * not_pad + padding_idx;
  const auto x = word_embeddings(layout.pack(input_ids.reshape({-1}))) +
                 position_embeddings(layout.pack(position_ids.reshape({-1})));
  return dropout(LayerNorm(x));
}

torch::Tensor MPNetEmbeddingsImpl::forward_embeds(const torch::Tensor& inputs_embeds, const TokenLayout& layout) {
  const auto x = layout.pack(inputs_embeds.reshape({-1, inputs_embeds.size(-1)})) +
                 position_embeddings(layout.positions() + (padding_idx + 1));
  return dropout(LayerNorm(x));
}

MPNetSelfAttentionImpl::MPNetSelfAttentionImpl(const ModelConfig& c, bool initialise)
    : num_attention_heads(c.num_heads) {
  const int64_t dim = c.hidden_size;
  q = register_module("q", Linear(dim, dim, initialise));
  k = register_module("k", Linear(dim, dim, initialise));
  v = register_module("v", Linear(dim, dim, initialise));
  o = register_module("o", Linear(dim, dim, initialise));
  dropout = register_module("dropout", Dropout(c.attention_dropout));
}

torch::Tensor MPNetSelfAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only,
                                              const torch::Tensor& position_bias) {
  return o(self_attention(x, q, k, v, qkv.get(), layout, num_attention_heads, first_only, dropout, position_bias));
}

MPNetAttentionImpl::MPNetAttentionImpl(const ModelConfig& c, bool initialise) {
  attn = register_module("attn", MPNetSelfAttention(c, initialise));
  LayerNorm = register_module("LayerNorm", layer_norm(c));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor MPNetAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only,
                                          const torch::Tensor& position_bias) {
  return LayerNorm(dropout(attn(x, layout, first_only, position_bias)) + residual_rows(x, layout, first_only));
}

MPNetLayerImpl::MPNetLayerImpl(const ModelConfig& c, bool initialise) {
  attention = register_module("attention", MPNetAttention(c, initialise));
  intermediate = register_module("intermediate", bert::BertIntermediate(c, initialise));
  output = register_module("output", bert::BertResidualOutput(c, c.intermediate_size, initialise));
}

torch::Tensor MPNetLayerImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only,
                                      const torch::Tensor& position_bias) {
  const auto a = attention(x, layout, first_only, position_bias);
  return output(intermediate(a), a);
}

void MPNetLayerImpl::pack(Precision precision) {
  auto& attn = attention->attn;
  if (attn->qkv) return;
  attn->qkv = fuse_qkv(attn->q, attn->k, attn->v, precision);
  attn->o->pack(precision);
  intermediate->dense->pack(precision, intermediate->activation);
  output->dense->pack(precision);
}

torch::Tensor relative_position_buckets(int64_t seq, int64_t num_buckets, int64_t max_distance) {
  const auto positions = torch::arange(seq, torch::kInt64);
  // n = query - key; keys after the query (n < 0) take the upper half of the buckets.
  auto n = positions.unsqueeze(1) - positions.unsqueeze(0);
  const int64_t half = num_buckets / 2, max_exact = half / 2;
  auto bucket = n.lt(0).to(torch::kInt64) * half;
  n = n.abs();
  // The logarithm only matters where n >= max_exact; n = 0 would give log(0) there.
  const auto scaled = torch::log(n.clamp_min(1).to(torch::kFloat32) / static_cast<double>(max_exact)) /
                      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                      static_cast<double>(half - max_exact);
  const auto large = (scaled.to(torch::kInt64) + max_exact).clamp_max(half - 1);
  return bucket + torch::where(n.lt(max_exact), n, large);
}

MPNetModelImpl::MPNetModelImpl(const ModelConfig& c, bool initialise) {
  embeddings = register_module("embeddings", MPNetEmbeddings(c, initialise));
  auto encoder = std::make_shared<nn::Module>();
  layer = nn::ModuleList();
  for (int64_t i = 0; i < c.num_layers; ++i) layer->push_back(MPNetLayer(c, initialise));
  encoder->register_module("layer", layer);
  relative_attention_bias = encoder->register_module(
      "relative_attention_bias", nn::Embedding(c.relative_attention_num_buckets, c.num_heads));
  register_module("encoder", encoder);
}

torch::Tensor MPNetModelImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) {
  return encode(embeddings(input_ids, layout), layout, first_only);
}

torch::Tensor MPNetModelImpl::position_bias(const TokenLayout& layout) {
  const auto buckets = relative_position_buckets(layout.seq, kBuckets, kMaxDistance).to(layout.mask.device());
  return relative_attention_bias(buckets).permute({2, 0, 1}).contiguous();  // [seq, seq, heads] -> [heads, seq, seq]
}

torch::Tensor MPNetModelImpl::encode(const torch::Tensor& embedded, const TokenLayout& layout, bool first_only) {
  const auto bias = position_bias(layout);
  auto h = embedded;
  const auto n = layer->size();
  for (std::size_t i = 0; i < n; ++i)
    h = layer[i]->as<MPNetLayer>()->forward(h, layout, first_only && i + 1 == n, bias);
  return first_only && n == 0 ? residual_rows(h, layout, true) : h;
}

}  // namespace mpnet

MPNetForSequenceClassificationImpl::MPNetForSequenceClassificationImpl(const ModelConfig& c, bool initialise)
    : SequenceClassifierImpl(c) {
  const auto num_labels = static_cast<int64_t>(std::max<std::size_t>(c.labels.size(), 1));
  mpnet = register_module("mpnet", mpnet::MPNetModel(c, initialise));
  classifier = register_module("classifier", roberta::RobertaClassificationHead(c, num_labels, initialise));
}

torch::Tensor MPNetForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                          const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(mpnet->embeddings(input_ids, layout), layout);
}

torch::Tensor MPNetForSequenceClassificationImpl::forward_embeds(const torch::Tensor& inputs_embeds,
                                                                 const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  return classify(mpnet->embeddings->forward_embeds(inputs_embeds, layout), layout);
}

torch::Tensor MPNetForSequenceClassificationImpl::classify(const torch::Tensor& embedded, const TokenLayout& layout) {
  // The head reads position 0 (<s>, Hugging Face's features[:, 0, :]) and nothing else.
  return classifier(mpnet->encode(embedded, layout, /*first_only=*/true));
}

void MPNetForSequenceClassificationImpl::pack_block(std::size_t i, Precision precision) {
  mpnet->layer[i]->as<mpnet::MPNetLayer>()->pack(precision);
}

namespace {

SequenceClassifier make(const ModelConfig& c, bool initialise) {
  return std::make_shared<MPNetForSequenceClassificationImpl>(c, initialise);
}

}  // namespace

const Family& mpnet_family() {
  static const Family family{mpnet_family_config(), make};
  return family;
}

}  // namespace emotune::model
