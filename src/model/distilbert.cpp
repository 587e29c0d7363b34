#include "model/distilbert.h"

#include <algorithm>
#include <cmath>

#include "model/attention_kernel.h"
#include <limits>

namespace emotune::model {

namespace nn = torch::nn;

namespace {
constexpr double kLayerNormEps = 1e-12;

nn::LayerNorm layer_norm(int64_t dim) {
  return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(kLayerNormEps));
}
}  // namespace

TokenLayout::TokenLayout(const torch::Tensor& attention_mask)
    : batch(attention_mask.size(0)), seq(attention_mask.size(1)), mask(attention_mask) {
  const auto real = attention_mask != 0;
  // The classifier reads position 0 (Hugging Face's hidden[:, 0]); it must be a real token.
  TORCH_CHECK(real.select(1, 0).all().item<bool>(), "attention mask: position 0 of every sequence must be a token");
  index = real.reshape({-1}).nonzero().reshape({-1});
  tokens = index.size(0);
  dense = tokens == batch * seq;
  // Packed rows keep grid order, so sequence b's position 0 comes after the real tokens of 0..b-1.
  lengths = real.sum(1);
  first = lengths.cumsum(0) - lengths;
}

torch::Tensor TokenLayout::pack(const torch::Tensor& grid) const {
  return dense ? grid : grid.index_select(0, index);
}

torch::Tensor TokenLayout::unpack(const torch::Tensor& rows) const {
  if (dense) return rows.view({batch, seq, rows.size(-1)});
  return torch::zeros({batch * seq, rows.size(-1)}, rows.options())
      .index_copy(0, index, rows)
      .view({batch, seq, rows.size(-1)});
}

EmbeddingsImpl::EmbeddingsImpl(const DistilBertConfig& c, bool initialise) {
  auto words = nn::EmbeddingOptions(c.vocab_size, c.dim).padding_idx(c.pad_token_id);
  if (!initialise) words._weight(torch::empty({c.vocab_size, c.dim}));  // given a weight, it draws nothing
  word_embeddings = register_module("word_embeddings", nn::Embedding(words));
  position_embeddings =
      register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.dim));
  LayerNorm = register_module("LayerNorm", layer_norm(c.dim));
  dropout = register_module("dropout", nn::Dropout(c.dropout));
}

torch::Tensor EmbeddingsImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout) {
  const auto positions = torch::arange(layout.seq, input_ids.options()).repeat({layout.batch});
  auto x = word_embeddings(layout.pack(input_ids.reshape({-1}))) + position_embeddings(layout.pack(positions));
  return dropout(LayerNorm(x));
}

MultiHeadSelfAttentionImpl::MultiHeadSelfAttentionImpl(const DistilBertConfig& c, bool initialise)
    : n_heads(c.n_heads), dim(c.dim) {
  q_lin = register_module("q_lin", Linear(c.dim, c.dim, initialise));
  k_lin = register_module("k_lin", Linear(c.dim, c.dim, initialise));
  v_lin = register_module("v_lin", Linear(c.dim, c.dim, initialise));
  out_lin = register_module("out_lin", Linear(c.dim, c.dim, initialise));
  dropout = register_module("dropout", nn::Dropout(c.attention_dropout));
}

torch::Tensor MultiHeadSelfAttentionImpl::forward(const torch::Tensor& x, const TokenLayout& layout,
                                                  bool first_only) {
  const int64_t bs = layout.batch, seq = layout.seq, head_dim = dim / n_heads;
  const bool inference = !is_training() && !torch::GradMode::is_enabled() && x.is_cpu() &&
                         x.scalar_type() == torch::kFloat32;
  TORCH_CHECK(inference || !qkv, "this model is packed for inference: it cannot train or compute gradients");
  if (inference) {
    // No dropout, no gradients: attend per sequence on the packed rows. Same
    // softmax(q k^T / sqrt(head_dim)) v, without padding or batched small products.
    torch::Tensor q, k, v;
    int64_t stride = dim;
    if (qkv) {
      q = qkv->forward(x);
      k = q.narrow(1, dim, dim);
      v = q.narrow(1, 2 * dim, dim);
      stride = 3 * dim;
    } else {
      q = q_lin(x).contiguous();
      k = k_lin(x).contiguous();
      v = v_lin(x).contiguous();
    }
    auto context = torch::empty({first_only ? bs : x.size(0), dim}, x.options());
    const auto start = layout.first.to(torch::kCPU).contiguous(), length = layout.lengths.to(torch::kCPU).contiguous();
    packed_attention(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), stride, context.data_ptr<float>(),
                     PackedSequences{start.data_ptr<int64_t>(), length.data_ptr<int64_t>(), bs, first_only}, n_heads,
                     head_dim, static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim))));
    return out_lin(context);
  }
  // packed [tokens, dim] -> [bs, heads, seq, head_dim]
  auto shape = [&](const torch::Tensor& t) {
    return layout.unpack(t).view({bs, seq, n_heads, head_dim}).transpose(1, 2);
  };
  const int64_t queries = first_only ? 1 : seq;
  auto q = first_only ? q_lin(x.index_select(0, layout.first)).view({bs, 1, n_heads, head_dim}).transpose(1, 2)
                      : shape(q_lin(x));
  q = q / std::sqrt(static_cast<double>(head_dim));
  auto k = shape(k_lin(x));
  auto v = shape(v_lin(x));
  auto scores = torch::matmul(q, k.transpose(2, 3));  // [bs, heads, queries, seq]
  auto padding = (layout.mask == 0).view({bs, 1, 1, seq}).expand_as(scores);
  scores = scores.masked_fill(padding, std::numeric_limits<float>::lowest());
  auto weights = dropout(torch::softmax(scores, -1));
  auto context = torch::matmul(weights, v).transpose(1, 2).contiguous().view({bs * queries, dim});
  return out_lin(first_only ? context : layout.pack(context));
}

void MultiHeadSelfAttentionImpl::pack(Precision precision) {
  if (qkv) return;
  torch::NoGradGuard no_grad;
  // Per-output-channel int8 scales make the fused layer's weights exactly those of the three layers.
  qkv = std::make_shared<const PackedLinear>(torch::cat({q_lin->weight, k_lin->weight, v_lin->weight}),
                                             torch::cat({q_lin->bias, k_lin->bias, v_lin->bias}), precision);
  for (auto* lin : {&q_lin, &k_lin, &v_lin}) (*lin)->release_plain();
  out_lin->pack(precision);
}

FFNImpl::FFNImpl(const DistilBertConfig& c, bool initialise) : gelu(c.activation == "gelu") {
  lin1 = register_module("lin1", Linear(c.dim, c.hidden_dim, initialise));
  lin2 = register_module("lin2", Linear(c.hidden_dim, c.dim, initialise));
  dropout = register_module("dropout", nn::Dropout(c.dropout));
}

torch::Tensor FFNImpl::forward(const torch::Tensor& x) {
  auto h = lin1(x);
  if (!lin1->packed()) h = gelu ? torch::gelu(h) : torch::relu(h);  // erf-form GELU, as Hugging Face's "gelu"
  return dropout(lin2(h));
}

void FFNImpl::pack(Precision precision) {
  lin1->pack(precision, gelu ? Activation::Gelu : Activation::Relu);
  lin2->pack(precision);
}

TransformerBlockImpl::TransformerBlockImpl(const DistilBertConfig& c, bool initialise) {
  attention = register_module("attention", MultiHeadSelfAttention(c, initialise));
  sa_layer_norm = register_module("sa_layer_norm", layer_norm(c.dim));
  ffn = register_module("ffn", FFN(c, initialise));
  output_layer_norm = register_module("output_layer_norm", layer_norm(c.dim));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const TokenLayout& layout, bool first_only) {
  const auto residual = first_only ? x.index_select(0, layout.first) : x;
  auto sa = sa_layer_norm(attention(x, layout, first_only) + residual);
  return output_layer_norm(ffn(sa) + sa);
}

void TransformerBlockImpl::pack(Precision precision) {
  if (attention->qkv) return;
  attention->pack(precision);
  ffn->pack(precision);
}

DistilBertModelImpl::DistilBertModelImpl(const DistilBertConfig& c, bool initialise) {
  embeddings = register_module("embeddings", Embeddings(c, initialise));
  auto transformer = std::make_shared<nn::Module>();
  layer = nn::ModuleList();
  for (int64_t i = 0; i < c.n_layers; ++i) layer->push_back(TransformerBlock(c, initialise));
  transformer->register_module("layer", layer);
  register_module("transformer", transformer);
}

torch::Tensor DistilBertModelImpl::forward(const torch::Tensor& input_ids, const TokenLayout& layout,
                                           bool first_only) {
  auto h = embeddings(input_ids, layout);
  const auto n = layer->size();
  for (std::size_t i = 0; i < n; ++i)
    h = layer[i]->as<TransformerBlock>()->forward(h, layout, first_only && i + 1 == n);
  return first_only && n == 0 ? h.index_select(0, layout.first) : h;
}

DistilBertForSequenceClassificationImpl::DistilBertForSequenceClassificationImpl(const DistilBertConfig& c,
                                                                                 bool initialise)
    : config(c) {
  const auto num_labels = static_cast<int64_t>(std::max<std::size_t>(c.labels.size(), 1));
  distilbert = register_module("distilbert", DistilBertModel(c, initialise));
  pre_classifier = register_module("pre_classifier", Linear(c.dim, c.dim, initialise));
  classifier = register_module("classifier", Linear(c.dim, num_labels, initialise));
  dropout = register_module("dropout", nn::Dropout(c.seq_classif_dropout));
}

torch::Tensor DistilBertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                               const torch::Tensor& attention_mask) {
  const TokenLayout layout(attention_mask);
  auto pooled = distilbert(input_ids, layout, /*first_only=*/true);  // the [CLS] position, Hugging Face's hidden[:, 0]
  pooled = dropout(torch::relu(pre_classifier(pooled)));
  return classifier(pooled);
}

void DistilBertForSequenceClassificationImpl::init_weights(double std, const std::vector<std::string>* only) {
  torch::NoGradGuard no_grad;
  for (auto& named : named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const std::string& name = named.key();
    const auto& m = named.value();
    if (only && std::none_of(only->begin(), only->end(), [&](const std::string& p) {
          return p == name + ".weight" || p == name + ".bias";
        }))
      continue;
    if (auto* lin = m->as<Linear>()) {
      lin->weight.normal_(0.0, std);
      lin->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0.0, std);
      if (emb->options.padding_idx()) emb->weight[*emb->options.padding_idx()].zero_();
    } else if (auto* ln = m->as<nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}

void DistilBertForSequenceClassificationImpl::pack_for_inference(Precision precision) {
  eval();
  for (const auto& block : *distilbert->layer) block->as<TransformerBlock>()->pack(precision);
  for (auto* head : {&pre_classifier, &classifier})
    if (!(*head)->packed()) (*head)->pack(Precision::Float32);
}

}  // namespace emotune::model
