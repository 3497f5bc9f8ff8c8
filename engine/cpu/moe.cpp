// CPU backend, mixture of experts: fp32 router softmax, top-k with renormalization, then each chosen
// expert runs once over the tokens that chose it (so decode reads only the chosen experts' weights,
// and prefill turns each expert into one GEMM). Ties in the router go to the lower expert index.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/cpu/cpu_backend.h"

namespace m1::engine::cpu {

void CpuBackend::moe(const float* x, int64_t T, const MoeWeights& w, float* out) {
  const int64_t E = w.router.rows, H = w.router.cols, K = w.top_k;
  const int64_t I = w.w1.empty() ? 0 : w.w1[0].rows;
  std::vector<float> logits(static_cast<size_t>(T * E));
  matmul(x, T, w.router, logits.data(), false);
  // Route: per token the top-k probabilities, renormalized to sum to one.
  std::vector<std::vector<std::pair<int64_t, float>>> chosen(static_cast<size_t>(E));  // expert -> (token, weight)
  std::vector<int64_t> order(static_cast<size_t>(E));
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
  std::fill(out, out + T * H, 0.f);
  std::vector<float> xe, g, u, dn;
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
