// CPU backend, attention part: lightning attention (chunked prefill, recurrent decode) and softmax
// attention (partial NeoX RoPE, paged K/V, causal GQA). Parallel over heads (lightning) or over
// (query, head) pairs (softmax); every sum is fp32 except the lightning state update, kept fp32 too.
// Decays are computed as exp(-slope * k) for each power k (not by repeated multiplication) so a
// block's result does not drift with the block size.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

namespace m1::engine::cpu {
namespace {

// Decay powers lambda^k = exp(-slope k), k = 0..n.
std::vector<float> decay_powers(float slope, int64_t n) {
  std::vector<float> d(static_cast<size_t>(n + 1));
  for (int64_t k = 0; k <= n; ++k) d[size_t(k)] = float(std::exp(-double(slope) * double(k)));
  return d;
}

// One head's chunked lightning attention over T tokens. q/k/v rows are at qkv + t*stride + {0,d,2d};
// S [d][d] (S[a][b] = sum lambda^.. k_a v_b); o rows at out + t*ostride.
void lightning_head(const float* qkv, int64_t T, int64_t stride, int64_t d, float slope, int64_t B,
                    float* S, float* out, int64_t ostride) {
  const std::vector<float> dec = decay_powers(slope, B + 1);
  std::vector<float> o(static_cast<size_t>(d)), kv(static_cast<size_t>(d * d));
  for (int64_t b0 = 0; b0 < T; b0 += B) {
    const int64_t m = std::min(B, T - b0);
    for (int64_t i = 0; i < m; ++i) {
      const float* qi = qkv + (b0 + i) * stride;
      std::fill(o.begin(), o.end(), 0.f);
      // intra-block: sum_{j<=i} lambda^(i-j) (q_i . k_j) v_j
      for (int64_t j = 0; j <= i; ++j) {
        const float* kj = qkv + (b0 + j) * stride + d;
        const float* vj = kj + d;
        float a = 0.f;
#pragma omp simd reduction(+ : a)
        for (int64_t c = 0; c < d; ++c) a += qi[c] * kj[c];
        a *= dec[size_t(i - j)];
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[size_t(c)] += a * vj[c];
      }
      // inter-block: lambda^(i+1) q_i S
      const float qd = dec[size_t(i + 1)];
      for (int64_t a = 0; a < d; ++a) {
        const float qa = qi[a] * qd;
        const float* Sa = S + a * d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[size_t(c)] += qa * Sa[c];
      }
      std::copy(o.begin(), o.end(), out + (b0 + i) * ostride);
    }
    // S <- lambda^m S + sum_j lambda^(m-1-j) k_j^T v_j
    std::fill(kv.begin(), kv.end(), 0.f);
    for (int64_t j = 0; j < m; ++j) {
      const float* kj = qkv + (b0 + j) * stride + d;
      const float* vj = kj + d;
      const float kd = dec[size_t(m - 1 - j)];
      for (int64_t a = 0; a < d; ++a) {
        const float ka = kj[a] * kd;
        float* row = kv.data() + a * d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) row[c] += ka * vj[c];
      }
    }
    const float bd = dec[size_t(m)];
    for (int64_t e = 0; e < d * d; ++e) S[e] = bd * S[e] + kv[size_t(e)];
  }
}

// One query against positions 0..last of one KV head: out[d] = softmax(q K^T * scale) V.
void attend_one(const float* q, int64_t last, int64_t kvh, float* const* page_base, const KvPoolShape& s,
                const int32_t* pages, float* scores, float* out) {
  const int64_t d = s.head_dim, ps = s.page_size, nkv = s.num_kv_heads;
  const float scale = float(1.0 / std::sqrt(double(d)));
  float mx = -INFINITY;
  for (int64_t j = 0; j <= last; ++j) {
    const float* kj = page_base[pages[j / ps]] + ((j % ps) * nkv + kvh) * d;
    float a = 0.f;
#pragma omp simd reduction(+ : a)
    for (int64_t c = 0; c < d; ++c) a += q[c] * kj[c];
    scores[j] = a * scale;
    mx = std::max(mx, scores[j]);
  }
  double sum = 0;
  for (int64_t j = 0; j <= last; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  const float inv = float(1.0 / sum);
  std::fill(out, out + d, 0.f);
  for (int64_t j = 0; j <= last; ++j) {
    const float* vj = page_base[pages[j / ps]] + ps * nkv * d + ((j % ps) * nkv + kvh) * d;
    const float p = scores[j] * inv;
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) out[c] += p * vj[c];
  }
}

}  // namespace

void CpuBackend::lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* state,
                                   float* out) {
  const int64_t nh = p.num_heads, d = p.head_dim;
  parallel_for(nh, T * nh * d * d > (int64_t(1) << 16) ? 1 : nh, [&](int64_t lo, int64_t hi) {
    for (int64_t h = lo; h < hi; ++h)
      lightning_head(qkv + h * 3 * d, T, 3 * nh * d, d, p.slopes[h], std::max<int64_t>(1, p.block_size),
                     state + h * d * d, out + h * d, nh * d);
  });
}

void CpuBackend::lightning_decode(const float* qkv, int64_t B, const LightningParams& p, float* const* states,
                                  float* out) {
  const int64_t nh = p.num_heads, d = p.head_dim;
  // Items are (session, head) pairs; a chunk gets at least 16K state elements (64 KB read + written).
  parallel_for(B * nh, std::max<int64_t>(1, (int64_t(1) << 14) / (d * d)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / nh, h = i % nh;
      const float* q = qkv + b * 3 * nh * d + h * 3 * d;
      const float* k = q + d;
      const float* v = k + d;
      float* S = states[b] + h * d * d;
      const float lam = float(std::exp(-double(p.slopes[h])));
      float* o = out + b * nh * d + h * d;
      std::fill(o, o + d, 0.f);
      for (int64_t a = 0; a < d; ++a) {  // S = lambda S + k^T v, then o = q S
        float* Sa = S + a * d;
        const float ka = k[a], qa = q[a];
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) {
          Sa[c] = lam * Sa[c] + ka * v[c];
          o[c] += qa * Sa[c];
        }
      }
    }
  });
}

void CpuBackend::rope(float* x, int64_t T, int64_t nheads, const int64_t* positions, const RopeParams& p) {
  const int64_t half = p.rotary_dim / 2;
  thread_local std::vector<float> inv_tl;
  inv_tl.resize(size_t(half));
  for (int64_t i = 0; i < half; ++i)
    inv_tl[size_t(i)] = float(1.0 / std::pow(p.theta, double(2 * i) / double(p.rotary_dim)));
  const float* inv = inv_tl.data();
  parallel_for(T, std::max<int64_t>(1, (int64_t(1) << 14) / (nheads * p.head_dim)), [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> cs, sn;
    cs.resize(size_t(half));
    sn.resize(size_t(half));
    for (int64_t t = lo; t < hi; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const float ang = float(positions[t]) * inv[i];  // fp32 angle, as the reference
        cs[size_t(i)] = float(std::cos(double(ang)));
        sn[size_t(i)] = float(std::sin(double(ang)));
      }
      for (int64_t h = 0; h < nheads; ++h) {
        float* r = x + (t * nheads + h) * p.head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = r[i], b = r[i + half];
          r[i] = a * cs[size_t(i)] - b * sn[size_t(i)];
          r[i + half] = b * cs[size_t(i)] + a * sn[size_t(i)];
        }
      }
    }
  });
}

void CpuBackend::kv_write(float* const* page_base, const KvPoolShape& s, const KvSeq& seq, const float* k,
                          const float* v, int64_t T) {
  const int64_t row = s.num_kv_heads * s.head_dim, ps = s.page_size;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = seq.length + t;
    float* page = page_base[seq.pages[pos / ps]];
    std::copy(k + t * row, k + (t + 1) * row, page + (pos % ps) * row);
    std::copy(v + t * row, v + (t + 1) * row, page + ps * row + (pos % ps) * row);
  }
}

void CpuBackend::attention_prefill(const float* q, int64_t T, int64_t nh, float* const* page_base,
                                   const KvPoolShape& s, const KvSeq& seq, float* out) {
  const int64_t d = s.head_dim, group = nh / s.num_kv_heads;
  // Items are (query, head) pairs, 4 to a chunk; small problems run on the calling thread.
  const int64_t n = T * nh;
  parallel_for(n, n * seq.length * d > (int64_t(1) << 16) ? 4 : n, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> scores;
    scores.resize(size_t(seq.length));
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t t = i / nh, h = i % nh;
      attend_one(q + (t * nh + h) * d, seq.length - T + t, h / group, page_base, s, seq.pages, scores.data(),
                 out + (t * nh + h) * d);
    }
  });
}

void CpuBackend::attention_decode(const float* q, int64_t B, int64_t nh, float* const* page_base,
                                  const KvPoolShape& s, const KvSeq* seqs, float* out) {
  const int64_t d = s.head_dim, group = nh / s.num_kv_heads;
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) longest = std::max(longest, seqs[b].length);
  const int64_t n = B * nh;
  parallel_for(n, n * longest * d > (int64_t(1) << 16) ? 1 : n, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> scores;
    scores.resize(size_t(longest));
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / nh, h = i % nh;
      attend_one(q + (b * nh + h) * d, seqs[b].length - 1, h / group, page_base, s, seqs[b].pages, scores.data(),
                 out + (b * nh + h) * d);
    }
  });
}

}  // namespace m1::engine::cpu
