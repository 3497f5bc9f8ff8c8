// CUDA launchers of engine/cuda/{ops,attention,moe,gemm}.h against plain double-precision
// references written from m1-model.md §3 (random inputs, poisoned outputs, GQA, partial pages,
// partial RoPE, top-2 routing that picks different experts per token).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <set>

#include "engine/cuda/attention.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/moe.h"
#include "engine/cuda/ops.h"
#include "tests/engine/cuda_test_util.h"

namespace m1::cuda {
namespace {
using namespace m1::cuda::testing;

TEST(CudaOps, RmsnormResidual) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (int n : {96, 6144, 8192}) {
    const int rows = 3;
    const float alpha = 3.5565588f, beta = 1.f, eps = 1e-5f;
    auto a = randn((size_t)rows * n, rng), b = randn((size_t)rows * n, rng), w = randn(n, rng, 0.2f, 1.f);
    auto wb = to_bf16(w);
    DevBuf<float> da(a), db(b), dy((size_t)rows * n), dr((size_t)rows * n);
    DevBuf<bf16> dw(wb);
    rmsnorm_residual(da.p, db.p, alpha, beta, dw.p, WDType::BF16, eps, dy.p, dr.p, rows, n, nullptr);
    std::vector<double> ry((size_t)rows * n), rr((size_t)rows * n);
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int i = 0; i < n; ++i) {
        rr[(size_t)r * n + i] = alpha * (double)a[(size_t)r * n + i] + beta * (double)b[(size_t)r * n + i];
        ss += rr[(size_t)r * n + i] * rr[(size_t)r * n + i];
      }
      const double inv = 1.0 / std::sqrt(ss / n + eps);
      for (int i = 0; i < n; ++i)
        ry[(size_t)r * n + i] = (double)__bfloat162float(wb[i]) * rr[(size_t)r * n + i] * inv;
    }
    EXPECT_TRUE(close_rel(dy.download(), ry, 1e-5, "y"));
    EXPECT_TRUE(close_rel(dr.download(), rr, 1e-6, "residual"));
    // plain rmsnorm in place with fp32 weights
    DevBuf<float> dw32(w);
    rmsnorm(da.p, dw32.p, WDType::F32, eps, da.p, rows, n, nullptr);
    std::vector<double> ry2((size_t)rows * n);
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int i = 0; i < n; ++i) ss += (double)a[(size_t)r * n + i] * a[(size_t)r * n + i];
      for (int i = 0; i < n; ++i) ry2[(size_t)r * n + i] = w[i] * a[(size_t)r * n + i] / std::sqrt(ss / n + eps);
    }
    EXPECT_TRUE(close_rel(da.download(), ry2, 1e-5, "rmsnorm in place"));
  }
}

TEST(CudaOps, Elementwise) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  const int n = 10007;
  auto a = randn(n, rng), b = randn(n, rng);
  DevBuf<float> da(a), db(b), dy(n);
  axpby(0.7f, da.p, -1.3f, db.p, n, dy.p, nullptr);
  std::vector<double> r(n);
  for (int i = 0; i < n; ++i) r[i] = 0.7 * a[i] - 1.3 * b[i];
  EXPECT_TRUE(close_rel(dy.download(), r, 1e-6, "axpby"));
  sigmoid_mul(da.p, db.p, n, dy.p, nullptr);
  for (int i = 0; i < n; ++i) r[i] = b[i] / (1 + std::exp(-(double)a[i]));
  EXPECT_TRUE(close_rel(dy.download(), r, 1e-6, "sigmoid_mul"));
  silu_inplace(da.p, n, nullptr);
  for (int i = 0; i < n; ++i) r[i] = a[i] / (1 + std::exp(-(double)a[i]));
  EXPECT_TRUE(close_rel(da.download(), r, 1e-6, "silu"));
}

TEST(CudaOps, RopeNeoxPartial) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (int rot : {64, 128}) {
    const int rows = 5, heads = 3, hd = 128;
    const float theta = 1e7f;
    auto x = randn((size_t)rows * heads * hd, rng);
    std::vector<int64_t> pos = {0, 1, 17, 1000, 65535};
    DevBuf<float> dx(x);
    DevBuf<int64_t> dp(pos);
    rope_neox(dx.p, dp.p, rows, heads, hd, rot, theta, nullptr);
    std::vector<double> r(x.begin(), x.end());
    for (int t = 0; t < rows; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < rot / 2; ++i) {
          const float inv = 1.0f / std::pow(theta, (float)(2 * i) / rot);  // fp32, as the reference
          const double ang = (double)((float)pos[t] * inv);
          const size_t o = ((size_t)t * heads + h) * hd;
          const double a = x[o + i], b = x[o + i + rot / 2];
          r[o + i] = a * std::cos(ang) - b * std::sin(ang);
          r[o + i + rot / 2] = b * std::cos(ang) + a * std::sin(ang);
        }
    EXPECT_TRUE(close_rel(dx.download(), r, 2e-5, "rope"));
  }
}

TEST(CudaOps, Embedding) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (const int n : {40, 600}) {  // 600: three CTAs across the row, the last one partial
  const int vocab = 50;
  auto tab = randn((size_t)vocab * n, rng);
  auto tb = to_bf16(tab);
  std::vector<int32_t> ids = {3, 49, 0, 7, 3};
  DevBuf<bf16> dt(tb);
  DevBuf<int32_t> di(ids);
  DevBuf<float> dy(ids.size() * n);
  embedding_gather(dt.p, WDType::BF16, di.p, dy.p, (int64_t)ids.size(), n, vocab, nullptr);
  std::vector<double> r(ids.size() * n);
  for (size_t t = 0; t < ids.size(); ++t)
    for (int i = 0; i < n; ++i) r[t * n + i] = __bfloat162float(tb[(size_t)ids[t] * n + i]);
  EXPECT_TRUE(close_rel(dy.download(), r, 0.0, "embedding"));
  }
}

// ---- attention ----------------------------------------------------------------------------------
template <typename T>
void run_attention(int Hq, int Hkv, int D, int page_size, std::vector<int> seq_lens, int queries_per_seq,
                   double tol, uint32_t seed) {
  std::mt19937 rng(seed);
  const int nseq = (int)seq_lens.size();
  const int max_len = *std::max_element(seq_lens.begin(), seq_lens.end());
  const int max_pages = (max_len + page_size - 1) / page_size;
  const size_t page_elems = 2ull * page_size * Hkv * D;
  const int num_pages = nseq * max_pages;
  // page contents random everywhere (unused slots too), page ids shuffled
  std::vector<float> pool_h((size_t)num_pages * page_elems);
  for (auto& v : pool_h) v = std::normal_distribution<float>(0.f, 1.f)(rng);
  if constexpr (std::is_same_v<T, bf16>)
    for (auto& v : pool_h) v = bf16_round(v);
  std::vector<int> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<T> pool_t(pool_h.size());
  for (size_t i = 0; i < pool_h.size(); ++i) pool_t[i] = T(pool_h[i]);
  DevBuf<T> d_pool(pool_t);
  std::vector<T*> table((size_t)nseq * max_pages);
  for (int s = 0; s < nseq; ++s)
    for (int p = 0; p < max_pages; ++p) table[(size_t)s * max_pages + p] = d_pool.p + perm[s * max_pages + p] * page_elems;
  DevBuf<T*> d_table(table);

  // queries: the last queries_per_seq positions of each sequence (causal prefill rows)
  std::vector<int> q_seq, q_len;
  for (int s = 0; s < nseq; ++s)
    for (int i = 0; i < queries_per_seq; ++i) {
      q_seq.push_back(s);
      q_len.push_back(seq_lens[s] - queries_per_seq + 1 + i);
    }
  const int NQ = (int)q_seq.size();
  std::vector<float> q = randn((size_t)NQ * Hq * D, rng);
  if constexpr (std::is_same_v<T, bf16>)
    for (auto& v : q) v = bf16_round(v);
  std::vector<T> qt(q.size());
  for (size_t i = 0; i < q.size(); ++i) qt[i] = T(q[i]);
  DevBuf<T> d_q(qt), d_out((size_t)NQ * Hq * D);
  DevBuf<int> d_qs(q_seq), d_ql(q_len);
  DevBuf<unsigned char> ws(attention_workspace_bytes(NQ, Hq, D, max_len));
  PagedKV<T> kv{d_table.p, max_pages, page_size, Hkv, D};
  const float scale = 1.f / std::sqrt((float)D);
  attention_paged<T>(d_q.p, Hq * D, d_qs.p, d_ql.p, NQ, Hq, max_len, kv, scale, d_out.p, ws.p, nullptr);
  std::vector<T> got_t = d_out.download();
  std::vector<float> got(got_t.size());
  for (size_t i = 0; i < got.size(); ++i) got[i] = (float)got_t[i];

  std::vector<double> ref((size_t)NQ * Hq * D, 0.0);
  const int G = Hq / Hkv;
  for (int n = 0; n < NQ; ++n) {
    const int s = q_seq[n], L = q_len[n];
    for (int h = 0; h < Hq; ++h) {
      const int hk = h / G;
      std::vector<double> sc(L);
      double mx = -1e300;
      for (int p = 0; p < L; ++p) {
        const float* page = pool_h.data() + (size_t)perm[s * max_pages + p / page_size] * page_elems;
        const float* k = page + ((size_t)(p % page_size) * Hkv + hk) * D;
        double d = 0;
        for (int i = 0; i < D; ++i) d += (double)q[((size_t)n * Hq + h) * D + i] * k[i];
        sc[p] = d / std::sqrt((double)D);
        mx = std::max(mx, sc[p]);
      }
      double den = 0;
      for (auto& v : sc) den += (v = std::exp(v - mx));
      for (int p = 0; p < L; ++p) {
        const float* page = pool_h.data() + (size_t)perm[s * max_pages + p / page_size] * page_elems;
        const float* v = page + (size_t)page_size * Hkv * D + ((size_t)(p % page_size) * Hkv + hk) * D;
        for (int i = 0; i < D; ++i) ref[((size_t)n * Hq + h) * D + i] += sc[p] / den * v[i];
      }
    }
  }
  EXPECT_TRUE(close_rel(got, ref, tol, "attention"));
}

TEST(CudaAttention, DecodeFp32Gqa) {
  M1_SKIP_WITHOUT_GPU();
  run_attention<float>(8, 2, 128, 64, {1, 100, 3000}, 1, 1e-5, 21);
  run_attention<float>(6, 3, 32, 16, {513, 7}, 1, 1e-5, 22);
  run_attention<float>(4, 4, 16, 64, {65}, 1, 1e-5, 23);
}
TEST(CudaAttention, PrefillRowsFp32) {
  M1_SKIP_WITHOUT_GPU();
  run_attention<float>(8, 1, 64, 64, {130}, 130, 1e-5, 24);
}
TEST(CudaAttention, DecodeBf16LongContext) {
  M1_SKIP_WITHOUT_GPU();
  run_attention<bf16>(64, 8, 128, 64, {20000}, 1, 1e-2, 25);
}
TEST(CudaAttention, KvAppend) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(26);
  const int Hkv = 2, D = 16, ps = 4, T = 7, start = 3;
  const size_t page_elems = 2ull * ps * Hkv * D;
  DevBuf<float> pool(3 * page_elems);
  std::vector<float*> table = {pool.p + 2 * page_elems, pool.p + 0, pool.p + page_elems};
  DevBuf<float*> dt(table);
  auto k = randn((size_t)T * Hkv * D, rng), v = randn((size_t)T * Hkv * D, rng);
  DevBuf<float> dk(k), dv(v);
  PagedKV<float> kv{dt.p, 3, ps, Hkv, D};
  kv_append<float>(dk.p, dv.p, Hkv * D, T, 0, start, kv, nullptr);
  const std::vector<float> got = pool.download();
  const int page_of[3] = {2, 0, 1};
  for (int t = 0; t < T; ++t) {
    const int p = start + t;
    const size_t base = (size_t)page_of[p / ps] * page_elems + (size_t)(p % ps) * Hkv * D;
    for (int i = 0; i < Hkv * D; ++i) {
      ASSERT_EQ(got[base + i], k[(size_t)t * Hkv * D + i]);
      ASSERT_EQ(got[base + (size_t)ps * Hkv * D + i], v[(size_t)t * Hkv * D + i]);
    }
  }
}

// ---- MoE ------------------------------------------------------------------------------------------
TEST(CudaMoe, RouteAndExperts) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(31);
  for (auto [T, E, k, H, I] : {std::tuple{1, 32, 2, 256, 96}, std::tuple{37, 8, 2, 64, 200}, std::tuple{9, 5, 3, 40, 24},
                                 std::tuple{100, 8, 2, 64, 96},  // 100: two route launches, not one
                                 // <= 16 pairs (the one-token-per-expert instance): experts with
                                 // several tokens, and K = 36 (no 16-byte loads)
                                 std::tuple{5, 4, 2, 128, 64}, std::tuple{2, 3, 2, 36, 20}}) {
    auto logits = randn((size_t)T * E, rng, 2.f);
    auto x = randn((size_t)T * H, rng);
    std::vector<std::vector<float>> w1(E), w2(E), w3(E);
    std::vector<std::unique_ptr<DevBuf<bf16>>> keep;
    MoeExperts m1{}, m2{}, m3{};
    for (int e = 0; e < E; ++e) {
      w1[e] = randn((size_t)I * H, rng, 0.1f);
      w3[e] = randn((size_t)I * H, rng, 0.1f);
      w2[e] = randn((size_t)H * I, rng, 0.1f);
      for (auto* w : {&w1[e], &w2[e], &w3[e]})
        for (auto& v : *w) v = bf16_round(v);
      keep.push_back(std::make_unique<DevBuf<bf16>>(to_bf16(w1[e]))); m1.w[e] = keep.back()->p;
      keep.push_back(std::make_unique<DevBuf<bf16>>(to_bf16(w3[e]))); m3.w[e] = keep.back()->p;
      keep.push_back(std::make_unique<DevBuf<bf16>>(to_bf16(w2[e]))); m2.w[e] = keep.back()->p;
    }
    DevBuf<float> dl(logits), dx(x), tw((size_t)T * k), h((size_t)T * k * I), y((size_t)T * k * H), out((size_t)T * H);
    DevBuf<int32_t> tid((size_t)T * k), off(E + 1), act(E + 1), sp((size_t)T * k);
    moe_route(dl.p, T, E, k, tw.p, tid.p, off.p, act.p, sp.p, nullptr);
    moe_experts_gate_up(dx.p, k, m1, m3, WDType::BF16, E, off.p, act.p, sp.p, (int64_t)T * k, h.p, I, H, nullptr);
    moe_experts_down(h.p, m2, WDType::BF16, E, off.p, act.p, sp.p, (int64_t)T * k, y.p, H, I, nullptr);
    moe_combine(y.p, tw.p, T, k, H, out.p, nullptr);

    std::vector<double> ref((size_t)T * H, 0.0), refw;
    const std::vector<int32_t> gid = tid.download();
    for (int t = 0; t < T; ++t) {
      std::vector<double> p(E);
      double mx = -1e300, den = 0;
      for (int e = 0; e < E; ++e) mx = std::max(mx, (double)logits[(size_t)t * E + e]);
      for (int e = 0; e < E; ++e) den += (p[e] = std::exp(logits[(size_t)t * E + e] - mx));
      for (auto& v : p) v /= den;
      std::vector<int> idx(E);
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return p[a] > p[b]; });
      double sel = 0;
      for (int s = 0; s < k; ++s) sel += p[idx[s]];
      for (int s = 0; s < k; ++s) {
        const int e = idx[s];
        EXPECT_EQ(gid[(size_t)t * k + s], e) << "token " << t << " slot " << s;
        refw.push_back(p[e] / sel);
        std::vector<double> hh(I);
        for (int i = 0; i < I; ++i) {
          double g = 0, u = 0;
          for (int j = 0; j < H; ++j) {
            g += (double)w1[e][(size_t)i * H + j] * x[(size_t)t * H + j];
            u += (double)w3[e][(size_t)i * H + j] * x[(size_t)t * H + j];
          }
          hh[i] = g / (1 + std::exp(-g)) * u;
        }
        for (int j = 0; j < H; ++j) {
          double acc = 0;
          for (int i = 0; i < I; ++i) acc += (double)w2[e][(size_t)j * I + i] * hh[i];
          ref[(size_t)t * H + j] += p[e] / sel * acc;
        }
      }
    }
    EXPECT_TRUE(close_rel(tw.download(), refw, 1e-6, "route weights"));
    EXPECT_TRUE(close_rel(out.download(), ref, 1e-5, "moe out"));
    const std::vector<int32_t> o = off.download(), a = act.download();
    EXPECT_EQ(o[0], 0);
    EXPECT_EQ(o[E], T * k);
    const std::set<int32_t> chosen(gid.begin(), gid.end());
    ASSERT_EQ(a[0], (int32_t)chosen.size());
    EXPECT_EQ(std::set<int32_t>(a.begin() + 1, a.begin() + 1 + a[0]), chosen);
  }
}

// ---- GEMM -----------------------------------------------------------------------------------------
TEST(CudaGemm, Bf16AndFp32Weights) {
  M1_SKIP_WITHOUT_GPU();
  std::mt19937 rng(41);
  Gemm gemm;
  gemm.set_gemv_rows(4);
  // M <= 4 takes the warp-per-row GEMV (fp32 activations as they are); larger M takes cuBLASLt
  // (activations rounded to bf16 for bf16 weights).
  for (auto [M, N, K] : {std::tuple{1, 1100, 512}, std::tuple{3, 1030, 264}, std::tuple{77, 384, 256},
                         std::tuple{256, 2048, 1024}}) {
    auto x = randn((size_t)M * K, rng), w = randn((size_t)N * K, rng, 0.05f), y0 = randn((size_t)M * N, rng);
    DevBuf<float> dx(x), dy(y0), dw32(w);
    DevBuf<bf16> dwb(to_bf16(w)), scratch((size_t)M * K);
    // fp32: exact products, accumulate onto y0
    gemm.run(dx.p, dw32.p, WDType::F32, dy.p, M, N, K, true, scratch.p, nullptr);
    std::vector<double> r((size_t)M * N), rb((size_t)M * N);
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double a = 0, b = 0;
        for (int kk = 0; kk < K; ++kk) {
          a += (double)x[(size_t)m * K + kk] * w[(size_t)n * K + kk];
          const float xv = M <= 4 ? x[(size_t)m * K + kk] : bf16_round(x[(size_t)m * K + kk]);
          b += (double)xv * bf16_round(w[(size_t)n * K + kk]);
        }
        r[(size_t)m * N + n] = a + y0[(size_t)m * N + n];
        rb[(size_t)m * N + n] = b;
      }
    EXPECT_TRUE(close_rel(dy.download(), r, 1e-5, "fp32 gemm"));
    gemm.run(dx.p, dwb.p, WDType::BF16, dy.p, M, N, K, false, scratch.p, nullptr);
    EXPECT_TRUE(close_rel(dy.download(), rb, 1e-5, "bf16 gemm"));
    if (M <= 4) {  // the default (cuBLASLt) path at the same shape: bf16-rounded activations
      Gemm lt;
      lt.run(dx.p, dwb.p, WDType::BF16, dy.p, M, N, K, false, scratch.p, nullptr);
      std::vector<double> rl((size_t)M * N);
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          double b = 0;
          for (int kk = 0; kk < K; ++kk) b += (double)bf16_round(x[(size_t)m * K + kk]) * bf16_round(w[(size_t)n * K + kk]);
          rl[(size_t)m * N + n] = b;
        }
      EXPECT_TRUE(close_rel(dy.download(), rl, 1e-5, "bf16 gemm (cuBLASLt, small M)"));
    }
  }
}

}  // namespace
}  // namespace m1::cuda
