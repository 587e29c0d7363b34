#include "model/encoder.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include <torch/version.h>


namespace emotune::model {

TokenLayout::TokenLayout(const torch::Tensor& attention_mask)
    : batch(attention_mask.size(0)), seq(attention_mask.size(1)), mask(attention_mask) {
  if (!attention_mask.is_cpu()) {
    // Counting the real tokens would wait for the device: accelerators run the padded grid instead.
    tokens = batch * seq;
    dense = true;
    lengths = attention_mask.ne(0).sum(1);
    first = torch::arange(batch, attention_mask.options().dtype(torch::kInt64)) * seq;
    return;
  }
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

namespace {

// softmax(q k^T / sqrt(head_dim) + bias) v over the padded grid, [bs, heads, queries|keys, head_dim], keys
// where mask [bs, seq] is 0 left out; bias [heads, seq, seq] or undefined.
torch::Tensor grid_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& mask, double dropout_p, const torch::Tensor& bias) {
  const auto keys = (mask != 0).view({mask.size(0), 1, 1, mask.size(1)});
  const auto query_bias = bias.defined() ? bias.narrow(1, 0, q.size(2)).unsqueeze(0).to(q.scalar_type()) : bias;
#if TORCH_VERSION_MAJOR >= 2
  // libtorch picks its fused kernel (memory-efficient attention on CUDA; flash where no mask is needed).
  if (query_bias.defined())
    return at::scaled_dot_product_attention(
        q, k, v, query_bias.masked_fill(keys.logical_not(), -std::numeric_limits<float>::infinity()), dropout_p);
  return at::scaled_dot_product_attention(q, k, v, keys, dropout_p);
#else
  auto scores = torch::matmul(q / std::sqrt(static_cast<double>(q.size(-1))), k.transpose(2, 3));
  if (query_bias.defined()) scores = scores + query_bias;
  scores = scores.masked_fill(keys.logical_not(), std::numeric_limits<float>::lowest());
  auto weights = torch::softmax(scores, -1);
  if (dropout_p > 0) weights = torch::dropout(weights, dropout_p, /*train=*/true);
  return torch::matmul(weights, v);
#endif
}

}  // namespace

torch::Tensor self_attention(const torch::Tensor& x, Linear& q_lin, Linear& k_lin, Linear& v_lin,
                             const PackedLinear* fused, const TokenLayout& layout, int64_t n_heads, bool first_only,
                             Dropout& dropout, const torch::Tensor& score_bias) {
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
    const auto bias = score_bias.defined() ? score_bias.contiguous() : score_bias;
    const ScoreBias packed_bias{bias.defined() ? bias.data_ptr<float>() : nullptr, bias.defined() ? bias.size(1) : 0};
    const auto start = layout.first.to(torch::kCPU).contiguous(), length = layout.lengths.to(torch::kCPU).contiguous();
    kernels::packed_attention(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), stride, context.data_ptr<float>(),
                     PackedSequences{start.data_ptr<int64_t>(), length.data_ptr<int64_t>(), bs, first_only}, n_heads,
                     head_dim, static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim))), packed_bias);
    return context;
  }
  if (packed_rows) {
    // Training or gradients on the CPU: the same per-sequence attention, differentiable, with the
    // attention dropout drawn only where real tokens meet.
    const auto q = q_lin(first_only ? x.index_select(0, layout.first) : x);
    return kernels::packed_attention_with_grad(q, k_lin(x), v_lin(x), layout.first, layout.lengths, n_heads, first_only,
                                      dropout->active_p(), score_bias);
  }
  // Accelerators: the padded grid, [tokens, dim] -> [bs, heads, seq, head_dim].
  auto shape = [&](const torch::Tensor& t) {
    return layout.unpack(t).view({bs, seq, n_heads, head_dim}).transpose(1, 2);
  };
  const int64_t queries = first_only ? 1 : seq;
  const auto q = first_only ? q_lin(x.index_select(0, layout.first)).view({bs, 1, n_heads, head_dim}).transpose(1, 2)
                            : shape(q_lin(x));
  const auto context =
      grid_attention(q, shape(k_lin(x)), shape(v_lin(x)), layout.mask, dropout->active_p(), score_bias);
  const auto rows = context.transpose(1, 2).contiguous().view({bs * queries, dim});
  return first_only ? rows : layout.pack(rows);
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
