#include "kernels/attention_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "kernels/dropout.h"

namespace emotune::kernels {

namespace {

// Dot product with eight independent float lanes, so the compiler can keep it in vector registers.
__attribute__((always_inline)) inline float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (float x : lane) s += x;
  return s;
}

// One sequence, one head, its first `queries` rows attending; `p` holds `len` floats of scratch.
// Compiled for AVX2 and the baseline, the loader picks; the helpers above are inlined into each version.
__attribute__((target_clones("avx2", "default"))) void attend(const float* q, const float* k, const float* v,
                                                                int64_t in_stride, float* out, int64_t queries,
                                                                int64_t len, int64_t dim, int64_t head_dim, float scale,
                                                                const float* bias, int64_t bias_seq, float* p) {
  for (int64_t i = 0; i < queries; ++i) {
    const float* qi = q + i * in_stride;
    const float* bi = bias ? bias + i * bias_seq : nullptr;
    float top = -INFINITY;
    for (int64_t j = 0; j < len; ++j) {
      p[j] = dot(qi, k + j * in_stride, head_dim) * scale;
      if (bi) p[j] += bi[j];
      top = std::max(top, p[j]);
    }
    float sum = 0;
    for (int64_t j = 0; j < len; ++j) sum += (p[j] = std::exp(p[j] - top));
    float* oi = out + i * dim;
    for (int64_t c = 0; c < head_dim; ++c) oi[c] = 0.0f;
    for (int64_t j = 0; j < len; ++j) {
      const float w = p[j] / sum;
      const float* vj = v + j * in_stride;
      for (int64_t c = 0; c < head_dim; ++c) oi[c] += w * vj[c];
    }
  }
}

}  // namespace

void packed_attention(const float* q, const float* k, const float* v, int64_t in_stride, float* out,
                      const PackedSequences& seqs, int64_t heads, int64_t head_dim, float scale, ScoreBias bias) {
  const int64_t dim = heads * head_dim;
  at::parallel_for(0, seqs.count * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t s = job / heads, h = job % heads;
      const int64_t in = seqs.start[s] * in_stride + h * head_dim;
      const int64_t o = (seqs.first_only ? s : seqs.start[s]) * dim + h * head_dim;
      const int64_t queries = seqs.first_only ? 1 : seqs.length[s];
      p.resize(static_cast<std::size_t>(seqs.length[s]));
      const float* head_bias = bias.data ? bias.data + h * bias.seq * bias.seq : nullptr;
      attend(q + in, k + in, v + in, in_stride, out + o, queries, seqs.length[s], dim, head_dim, scale, head_bias,
             bias.seq, p.data());
    }
  });
}

namespace {

// Where one (sequence, head) job of the differentiable attention reads and writes. Rows are `dim`
// floats apart in q, k, v, out and their gradients; the job owns columns [h * head_dim, +head_dim)
// of its sequence's rows, so jobs never write the same element.
struct AttentionJob {
  int64_t q_row, kv_row;     // first row of the job's queries, and of its keys and values
  int64_t queries, len;      // queries attending; keys (= values) attended to
  int64_t column;            // h * head_dim
  int64_t weights;           // offset of its [queries, len] softmax weights in the saved buffer
  int64_t head;
};

struct AttentionPlan {
  int64_t heads, head_dim, dim;
  float scale;
  std::vector<AttentionJob> jobs;
  int64_t weight_count = 0;
};

// Jobs ordered head-major, so that splitting the list in contiguous halves between threads gives
// each thread whole heads of every sequence, whatever the order of long and short texts.
AttentionPlan plan_attention(const torch::Tensor& start, const torch::Tensor& length, int64_t heads, int64_t dim,
                             bool first_only) {
  AttentionPlan plan{heads, dim / heads, dim, static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim / heads))), {}};
  const int64_t count = start.size(0);
  const int64_t* st = start.data_ptr<int64_t>();
  const int64_t* ln = length.data_ptr<int64_t>();
  plan.jobs.reserve(static_cast<std::size_t>(count * heads));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t s = 0; s < count; ++s) {
      const int64_t queries = first_only ? 1 : ln[s];
      plan.jobs.push_back({first_only ? s : st[s], st[s], queries, ln[s], h * plan.head_dim, plan.weight_count, h});
      plan.weight_count += queries * ln[s];
    }
  return plan;
}

// One job forward: w = softmax(q k^T * scale) is stored for backward; out = (w, dropped) v.
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_forward(
    const float* q, const float* k, const float* v, float* out, float* w, const AttentionJob& job, int64_t dim,
    int64_t head_dim, float scale, const DropoutMask* mask, ScoreBias bias) {
  for (int64_t i = 0; i < job.queries; ++i) {
    const float* qi = q + (job.q_row + i) * dim + job.column;
    float* wi = w + job.weights + i * job.len;
    const float* bi = bias.data ? bias.data + (job.head * bias.seq + i) * bias.seq : nullptr;
    float top = -INFINITY;
    for (int64_t j = 0; j < job.len; ++j) {
      wi[j] = dot(qi, k + (job.kv_row + j) * dim + job.column, head_dim) * scale;
      if (bi) wi[j] += bi[j];
      top = std::max(top, wi[j]);
    }
    float sum = 0;
    for (int64_t j = 0; j < job.len; ++j) sum += (wi[j] = std::exp(wi[j] - top));
    const float inv = 1.0f / sum;
    float* oi = out + (job.q_row + i) * dim + job.column;
    for (int64_t c = 0; c < head_dim; ++c) oi[c] = 0.0f;
    for (int64_t j = 0; j < job.len; ++j) {
      wi[j] *= inv;
      const float a = mask ? wi[j] * mask->factor(static_cast<std::uint64_t>(job.weights + i * job.len + j)) : wi[j];
      const float* vj = v + (job.kv_row + j) * dim + job.column;
      for (int64_t c = 0; c < head_dim; ++c) oi[c] += a * vj[c];
    }
  }
}

// One job backward, from d_out: with the dropped weights a = w * f, dv = a^T d_out; da = d_out v^T;
// dw = da * f; ds = w * (dw - rowsum(dw * w)); dq = ds k * scale; dk = ds^T q * scale. With `d_scores`
// the job also writes ds (the scores' gradient, the bias's share) where its weights sit.
// `g` holds `len` floats of scratch.
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_backward(
    const float* q, const float* k, const float* v, const float* w, const float* d_out, float* dq, float* dk,
    float* dv, const AttentionJob& job, int64_t dim, int64_t head_dim, float scale, const DropoutMask* mask,
    float* d_scores, float* g) {
  for (int64_t j = 0; j < job.len; ++j) {
    float* dkj = dk + (job.kv_row + j) * dim + job.column;
    float* dvj = dv + (job.kv_row + j) * dim + job.column;
    for (int64_t c = 0; c < head_dim; ++c) dkj[c] = dvj[c] = 0.0f;
  }
  for (int64_t i = 0; i < job.queries; ++i) {
    const float* qi = q + (job.q_row + i) * dim + job.column;
    const float* doi = d_out + (job.q_row + i) * dim + job.column;
    const float* wi = w + job.weights + i * job.len;
    float rowsum = 0;
    for (int64_t j = 0; j < job.len; ++j) {
      const float f = mask ? mask->factor(static_cast<std::uint64_t>(job.weights + i * job.len + j)) : 1.0f;
      float* dvj = dv + (job.kv_row + j) * dim + job.column;
      const float a = wi[j] * f;
      for (int64_t c = 0; c < head_dim; ++c) dvj[c] += a * doi[c];
      g[j] = dot(doi, v + (job.kv_row + j) * dim + job.column, head_dim) * f;
      rowsum += g[j] * wi[j];
    }
    float* dqi = dq + (job.q_row + i) * dim + job.column;
    for (int64_t c = 0; c < head_dim; ++c) dqi[c] = 0.0f;
    float* dsi = d_scores ? d_scores + job.weights + i * job.len : nullptr;
    for (int64_t j = 0; j < job.len; ++j) {
      const float d_score = wi[j] * (g[j] - rowsum);
      if (dsi) dsi[j] = d_score;
      const float ds = d_score * scale;
      const float* kj = k + (job.kv_row + j) * dim + job.column;
      float* dkj = dk + (job.kv_row + j) * dim + job.column;
      for (int64_t c = 0; c < head_dim; ++c) {
        dqi[c] += ds * kj[c];
        dkj[c] += ds * qi[c];
      }
    }
  }
}

ScoreBias bias_of(const torch::Tensor& bias) {
  if (bias.numel() == 0) return {};
  return {bias.data_ptr<float>(), bias.size(1)};
}

// d_bias[h, i, j] = the sum over sequences of their score gradients at (h, i, j); one thread per head,
// so no two threads add into the same row.
torch::Tensor sum_per_head(const AttentionPlan& plan, const torch::Tensor& d_scores, const torch::Tensor& bias) {
  auto d_bias = torch::zeros_like(bias);
  const int64_t seq = bias.size(1), count = static_cast<int64_t>(plan.jobs.size()) / plan.heads;
  const float* ds = d_scores.data_ptr<float>();
  float* db = d_bias.data_ptr<float>();
  at::parallel_for(0, plan.heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h)
      for (int64_t s = 0; s < count; ++s) {
        const auto& job = plan.jobs[static_cast<std::size_t>(h * count + s)];
        for (int64_t i = 0; i < job.queries; ++i) {
          float* row = db + (h * seq + i) * seq;
          const float* from = ds + job.weights + i * job.len;
          for (int64_t j = 0; j < job.len; ++j) row[j] += from[j];
        }
      }
  });
  return d_bias;
}

struct PackedAttentionFunction : torch::autograd::Function<PackedAttentionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& start, const torch::Tensor& length,
                               int64_t heads, bool first_only, double dropout_p, const torch::Tensor& bias) {
    const auto plan = plan_attention(start, length, heads, q.size(1), first_only);
    const ScoreBias score_bias = bias_of(bias);
    auto weights = torch::empty({plan.weight_count}, q.options());
    auto out = torch::empty_like(q);
    std::optional<DropoutMask> mask;
    if (dropout_p > 0) mask = DropoutMask::draw(dropout_p);
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    float *op = out.data_ptr<float>(), *wp = weights.data_ptr<float>();
    at::parallel_for(0, static_cast<int64_t>(plan.jobs.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j)
        attend_forward(qp, kp, vp, op, wp, plan.jobs[static_cast<std::size_t>(j)], plan.dim, plan.head_dim,
                       plan.scale, mask ? &*mask : nullptr, score_bias);
    });
    ctx->save_for_backward({q, k, v, weights, start, length, bias});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["first_only"] = first_only;
    ctx->saved_data["dropout"] = mask.has_value();
    if (mask) mask->save(ctx);
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &weights = saved[3];
    const auto plan =
        plan_attention(saved[4], saved[5], ctx->saved_data["heads"].toInt(), q.size(1), ctx->saved_data["first_only"].toBool());
    std::optional<DropoutMask> mask;
    if (ctx->saved_data["dropout"].toBool()) mask = DropoutMask::saved(ctx);
    const auto d_out = grads[0].contiguous();
    const auto& bias = saved[6];
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    // The bias's gradient: each job's score gradients, laid out as its weights, then summed per head.
    torch::Tensor d_scores;
    if (bias.numel() > 0) d_scores = torch::empty_like(weights);
    float* dsp = d_scores.defined() ? d_scores.data_ptr<float>() : nullptr;
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *wp = weights.data_ptr<float>(), *dop = d_out.data_ptr<float>();
    float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
    at::parallel_for(0, static_cast<int64_t>(plan.jobs.size()), 1, [&](int64_t begin, int64_t end) {
      std::vector<float> g;
      for (int64_t j = begin; j < end; ++j) {
        const auto& job = plan.jobs[static_cast<std::size_t>(j)];
        g.resize(static_cast<std::size_t>(job.len));
        attend_backward(qp, kp, vp, wp, dop, dqp, dkp, dvp, job, plan.dim, plan.head_dim, plan.scale,
                        mask ? &*mask : nullptr, dsp, g.data());
      }
    });
    const auto d_bias = d_scores.defined() ? sum_per_head(plan, d_scores, bias) : torch::Tensor();
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), d_bias};
  }
};

}  // namespace

torch::Tensor packed_attention_with_grad(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& start, const torch::Tensor& length, int64_t heads,
                                         bool first_only, double dropout_p, const torch::Tensor& bias) {
  for (const auto* t : {&q, &k, &v})
    TORCH_CHECK(t->dim() == 2 && t->is_cpu() && t->scalar_type() == torch::kFloat32 && t->size(1) == q.size(1),
                "packed attention: q, k and v must be float32 CPU matrices of one width");
  TORCH_CHECK(q.size(1) % heads == 0, "packed attention: width not divisible by the number of heads");
  TORCH_CHECK(dropout_p >= 0 && dropout_p <= 1, "packed attention: dropout must be in [0, 1]");
  if (dropout_p == 1) return q * 0.0;  // every weight dropped
  const auto st = start.to(torch::kCPU, torch::kInt64).contiguous(), ln = length.to(torch::kCPU, torch::kInt64).contiguous();
  // No bias travels as an empty tensor: autograd functions take defined tensors.
  auto b = bias.defined() ? bias.contiguous() : torch::empty({0}, q.options());
  if (bias.defined()) {
    const auto longest = ln.numel() ? ln.max().item<int64_t>() : 0;
    TORCH_CHECK(b.dim() == 3 && b.size(0) == heads && b.size(1) == b.size(2) && b.size(1) >= longest && b.is_cpu() &&
                    b.scalar_type() == torch::kFloat32,
                "packed attention: the score bias must be a float32 CPU tensor [heads, seq, seq] covering every sequence");
  }
  return PackedAttentionFunction::apply(q.contiguous(), k.contiguous(), v.contiguous(), st, ln, heads, first_only,
                                        dropout_p, b);
}

}  // namespace emotune::kernels
