#include "model/attention_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace emotune::model {

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
                                                                float* p) {
  for (int64_t i = 0; i < queries; ++i) {
    const float* qi = q + i * in_stride;
    float top = -INFINITY;
    for (int64_t j = 0; j < len; ++j) {
      p[j] = dot(qi, k + j * in_stride, head_dim) * scale;
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
                      const PackedSequences& seqs, int64_t heads, int64_t head_dim, float scale) {
  const int64_t dim = heads * head_dim;
  at::parallel_for(0, seqs.count * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t s = job / heads, h = job % heads;
      const int64_t in = seqs.start[s] * in_stride + h * head_dim;
      const int64_t o = (seqs.first_only ? s : seqs.start[s]) * dim + h * head_dim;
      const int64_t queries = seqs.first_only ? 1 : seqs.length[s];
      p.resize(static_cast<std::size_t>(seqs.length[s]));
      attend(q + in, k + in, v + in, in_stride, out + o, queries, seqs.length[s], dim, head_dim, scale, p.data());
    }
  });
}

}  // namespace emotune::model
