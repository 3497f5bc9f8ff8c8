// CPU backend, mixture of experts: fp32 router softmax, top-k with renormalization, then each chosen
// expert runs once over the tokens that chose it (so decode reads only the chosen experts' weights,
// and prefill turns each expert into one GEMM). Ties in the router go to the lower expert index.
// One token (batch-1 decode) takes a shorter road with the same arithmetic: the gate and up rows
// of all chosen experts are one parallel loop and their down rows another, two hand-overs to the
// thread pool per layer instead of six; the outputs are summed in expert order as the long road
// does, so both give the same bits.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

namespace m1::engine::cpu {
namespace {

// Rows of `count` matrices of `rows` rows each, numbered consecutively: runs gemv_rows over the
// part of [lo, hi) that falls in each matrix m (weights W(m), output out(m)).
template <class WeightOf, class OutOf>
void gemv_stacked(int64_t rows, int64_t lo, int64_t hi, const WeightOf& W, const float* const* x, const OutOf& out) {
  while (lo < hi) {
    const int64_t m = lo / rows, r0 = lo % rows, r1 = std::min(rows, r0 + (hi - lo));
    gemv_rows(W(m), r0, r1, x[m], 1, out(m), rows, false);
    lo += r1 - r0;
  }
}

// The shorter road for one token: `picked` holds (expert, weight) in ascending expert order.
void moe_one_token(const float* x, const MoeWeights& w, const std::vector<std::pair<int64_t, float>>& picked,
                   float* out) {
  const int64_t H = w.router.cols, I = w.w1.empty() ? 0 : w.w1[0].rows, K = int64_t(picked.size());
  thread_local std::vector<float> gu, dn;  // [K][2][I] gate then up; [K][H] down
  gu.resize(size_t(K * 2 * I));
  dn.resize(size_t(K * H));
  float* gup = gu.data();
  float* dnp = dn.data();
  // Gate and up rows: matrix m = 2k + (0 gate | 1 up), all reading x.
  std::vector<const float*> xs(size_t(2 * K), x);
  int64_t grain = grain_for(2 * K * I, (int64_t(1) << 16) / std::max<int64_t>(1, H));
  parallel_for(2 * K * I, (grain + 3) / 4 * 4, [&](int64_t lo, int64_t hi) {
    gemv_stacked(
        I, lo, hi,
        [&](int64_t m) -> const Weight& {
          const size_t e = size_t(picked[size_t(m / 2)].first);
          return m % 2 ? w.w3[e] : w.w1[e];
        },
        xs.data(), [&](int64_t m) { return gup + m * I; });
  });
  std::vector<const float*> hs(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) {
    float* g = gup + 2 * k * I;
    const float* u = g + I;
    for (int64_t i = 0; i < I; ++i) g[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
    hs[size_t(k)] = g;
  }
  grain = grain_for(K * H, (int64_t(1) << 16) / std::max<int64_t>(1, I));
  parallel_for(K * H, (grain + 3) / 4 * 4, [&](int64_t lo, int64_t hi) {
    gemv_stacked(
        H, lo, hi, [&](int64_t m) -> const Weight& { return w.w2[size_t(picked[size_t(m)].first)]; }, hs.data(),
        [&](int64_t m) { return dnp + m * H; });
  });
  std::fill(out, out + H, 0.f);
  for (int64_t k = 0; k < K; ++k) {
    const float wt = picked[size_t(k)].second;
    const float* d = dnp + k * H;
    for (int64_t c = 0; c < H; ++c) out[c] += wt * d[c];
  }
}

}  // namespace

void CpuBackend::moe(const float* x, int64_t T, const MoeWeights& w, float* out) {
  const int64_t E = w.router.rows, H = w.router.cols, K = w.top_k;
  const int64_t I = w.w1.empty() ? 0 : w.w1[0].rows;
  // Scratch kept per thread across calls: a decode step makes one call per layer.
  thread_local std::vector<float> logits;
  thread_local std::vector<std::vector<std::pair<int64_t, float>>> chosen;  // expert -> (token, weight)
  thread_local std::vector<int64_t> order;
  logits.resize(size_t(T * E));
  matmul(x, T, w.router, logits.data(), false);
  // Route: per token the top-k probabilities, renormalized to sum to one.
  chosen.resize(size_t(E));
  for (auto& c : chosen) c.clear();
  order.resize(size_t(E));
  for (int64_t t = 0; t < T; ++t) {
    float* l = logits.data() + t * E;
    const float mx = *std::max_element(l, l + E);
    float sum = 0.f;
    for (int64_t e = 0; e < E; ++e) sum += (l[e] = std::exp(l[e] - mx));
    for (int64_t e = 0; e < E; ++e) l[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int64_t a, int64_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
    float top = 0.f;
    for (int64_t k = 0; k < K; ++k) top += l[order[size_t(k)]];
    for (int64_t k = 0; k < K; ++k) chosen[size_t(order[size_t(k)])].push_back({t, l[order[size_t(k)]] / top});
  }
  if (T == 1) {
    std::vector<std::pair<int64_t, float>> picked;
    for (int64_t e = 0; e < E; ++e)
      if (!chosen[size_t(e)].empty()) picked.push_back({e, chosen[size_t(e)][0].second});
    return moe_one_token(x, w, picked, out);
  }
  std::fill(out, out + T * H, 0.f);
  thread_local std::vector<float> xe, g, u, dn;
  for (int64_t e = 0; e < E; ++e) {
    const auto& toks = chosen[size_t(e)];
    const int64_t n = int64_t(toks.size());
    if (n == 0) continue;
    xe.resize(size_t(n * H));
    g.resize(size_t(n * I));
    u.resize(size_t(n * I));
    dn.resize(size_t(n * H));
    for (int64_t r = 0; r < n; ++r) std::copy(x + toks[size_t(r)].first * H, x + (toks[size_t(r)].first + 1) * H,
                                              xe.begin() + r * H);
    matmul(xe.data(), n, w.w1[size_t(e)], g.data(), false);
    matmul(xe.data(), n, w.w3[size_t(e)], u.data(), false);
    for (int64_t i = 0; i < n * I; ++i) g[size_t(i)] = g[size_t(i)] / (1.f + std::exp(-g[size_t(i)])) * u[size_t(i)];
    matmul(g.data(), n, w.w2[size_t(e)], dn.data(), false);
    for (int64_t r = 0; r < n; ++r) {
      const float wt = toks[size_t(r)].second;
      float* o = out + toks[size_t(r)].first * H;
      const float* d = dn.data() + r * H;
      for (int64_t c = 0; c < H; ++c) o[c] += wt * d[c];
    }
  }
}

}  // namespace m1::engine::cpu
