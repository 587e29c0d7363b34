#include "model/encoder.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "model/attention_kernel.h"

namespace emotune::model {

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

torch::Tensor TokenLayout::positions() const {
  return pack(torch::arange(seq, mask.options().dtype(torch::kInt64)).repeat({batch}));
}

torch::Tensor self_attention(const torch::Tensor& x, Linear& q_lin, Linear& k_lin, Linear& v_lin,
                             const PackedLinear* fused, const TokenLayout& layout, int64_t n_heads, bool first_only,
                             Dropout& dropout) {
  const int64_t bs = layout.batch, seq = layout.seq, dim = x.size(1), head_dim = dim / n_heads;
  const bool packed_rows = x.is_cpu() && x.scalar_type() == torch::kFloat32;
  const bool inference = packed_rows && !dropout->is_training() && !torch::GradMode::is_enabled();
  TORCH_CHECK(inference || !fused, "this model is packed for inference: it cannot train or compute gradients");
  if (inference) {
    // No dropout, no gradients: attend per sequence on the packed rows. Same
    // softmax(q k^T / sqrt(head_dim)) v, without padding or batched small products.
    torch::Tensor q, k, v;
    int64_t stride = dim;
    if (fused) {
      q = fused->forward(x);
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
    return context;
  }
  if (packed_rows) {
    // Training or gradients on the CPU: the same per-sequence attention, differentiable, with the
    // attention dropout drawn only where real tokens meet.
    const auto q = q_lin(first_only ? x.index_select(0, layout.first) : x);
    return packed_attention_with_grad(q, k_lin(x), v_lin(x), layout.first, layout.lengths, n_heads, first_only,
                                      dropout->active_p());
  }
  // Accelerators: batched products over the padded grid, packed [tokens, dim] -> [bs, heads, seq, head_dim].
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
  return first_only ? context : layout.pack(context);
}

std::shared_ptr<const PackedLinear> fuse_qkv(Linear& q, Linear& k, Linear& v, Precision precision) {
  torch::NoGradGuard no_grad;
  auto fused = std::make_shared<const PackedLinear>(torch::cat({q->weight, k->weight, v->weight}),
                                                    torch::cat({q->bias, k->bias, v->bias}), precision);
  for (auto* lin : {&q, &k, &v}) (*lin)->release_plain();
  return fused;
}

Activation activation_named(const std::string& name) {
  if (name == "gelu") return Activation::Gelu;
  if (name == "relu") return Activation::Relu;
  throw std::invalid_argument("activation '" + name + "' is not supported (gelu, relu)");
}

torch::Tensor activate(const torch::Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::Gelu:
      return torch::gelu(x);  // erf form, as Hugging Face's "gelu"
    case Activation::Relu:
      return torch::relu(x);
    case Activation::None:
      break;
  }
  return x;
}

torch::nn::LayerNorm layer_norm(const ModelConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

torch::nn::Embedding word_embeddings(const ModelConfig& c, bool initialise) {
  auto o = torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id);
  if (!initialise) o._weight(torch::empty({c.vocab_size, c.hidden_size}));  // given a weight, it draws nothing
  return torch::nn::Embedding(o);
}

torch::Tensor residual_rows(const torch::Tensor& x, const TokenLayout& layout, bool first_only) {
  return first_only ? x.index_select(0, layout.first) : x;
}

}  // namespace emotune::model
