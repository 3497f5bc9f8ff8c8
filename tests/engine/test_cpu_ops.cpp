// CPU backend ops against plain formulas written out here (double precision, no shared code):
// matmul in each weight dtype and both paths (gemv / BLAS tiles), RMSNorm, partial and full NeoX
// RoPE, lightning attention (chunked at several block sizes, then recurrent decode) against the
// O(T^2) definition, paged causal GQA attention, MoE routing + experts, and the slope formula.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/backend.h"
#include "engine/model.h"

using namespace m1::engine;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

void expect_near_all(const std::vector<float>& a, const std::vector<double>& b, double tol, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > tol * std::max(1.0, std::abs(b[i])) && bad++ < 5)
      ADD_FAILURE() << what << " [" << i << "] " << a[i] << " vs " << b[i];
  EXPECT_EQ(bad, 0) << what;
}

struct Mat {  // a weight in some dtype plus its exact fp32 values
  std::vector<uint16_t> h;
  std::vector<float> f, exact;
  Weight w;
  Mat(int64_t rows, int64_t cols, DType dt, uint32_t seed, float sd = 0.3f) {
    exact = randn(size_t(rows * cols), seed, sd);
    w.dtype = dt, w.rows = rows, w.cols = cols;
    if (dt == DType::F32) {
      f = exact;
      w.data = f.data();
    } else {
      for (auto& x : exact) {
        h.push_back(dt == DType::BF16 ? f32_to_bf16(x) : f32_to_f16(x));
        x = dt == DType::BF16 ? bf16_to_f32(h.back()) : f16_to_f32(h.back());
      }
      w.data = h.data();
    }
  }
};

TEST(CpuOps, MatmulAllDtypesBothPaths) {
  auto be = make_cpu_backend();
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t T : {1, 3, 40}) {
      const int64_t N = 37, K = 300;
      Mat W(N, K, dt, 1);
      auto x = randn(size_t(T * K), 2);
      std::vector<float> y(static_cast<size_t>(T * N), 1.f);
      be->matmul(x.data(), T, W.w, y.data(), true);  // accumulate onto ones
      std::vector<double> ref(static_cast<size_t>(T * N));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < N; ++o) {
          double s = 1.0;
          for (int64_t k = 0; k < K; ++k) s += double(x[size_t(t * K + k)]) * W.exact[size_t(o * K + k)];
          ref[size_t(t * N + o)] = s;
        }
      expect_near_all(y, ref, 2e-5, "matmul");
    }
}

TEST(CpuOps, RmsNorm) {
  auto be = make_cpu_backend();
  const int64_t T = 3, n = 64;
  auto x = randn(size_t(T * n), 3, 2.f);
  Mat w(1, n, DType::F32, 4);
  std::vector<float> y(x.size());
  be->rmsnorm(x.data(), w.w, T, n, 1e-6f, y.data());
  std::vector<double> ref(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[size_t(t * n + i)]) * x[size_t(t * n + i)];
    for (int64_t i = 0; i < n; ++i) ref[size_t(t * n + i)] = w.exact[size_t(i)] * x[size_t(t * n + i)] / std::sqrt(ss / n + 1e-6);
  }
  expect_near_all(y, ref, 1e-5, "rmsnorm");
}

// Plain formula: pairs (i, i + rd/2) for i < rd/2 rotate by angle pos * theta^(-2i/rd); dims >= rd stay.
TEST(CpuOps, PartialAndFullNeoxRope) {
  auto be = make_cpu_backend();
  for (int64_t rd : {8, 32}) {
    const int64_t T = 5, nh = 3, hd = 32;
    auto x = randn(size_t(T * nh * hd), 5);
    std::vector<int64_t> pos = {0, 1, 7, 100, 4097};
    std::vector<float> y = x;
    be->rope(y.data(), T, nh, pos.data(), RopeParams{hd, rd, 1e4});
    std::vector<double> ref(x.begin(), x.end());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < nh; ++h)
        for (int64_t i = 0; i < rd / 2; ++i) {
          const size_t a = size_t((t * nh + h) * hd + i), b = a + size_t(rd / 2);
          const double ang = double(pos[size_t(t)]) * std::pow(1e4, -2.0 * double(i) / double(rd));
          ref[a] = x[a] * std::cos(ang) - x[b] * std::sin(ang);
          ref[b] = x[b] * std::cos(ang) + x[a] * std::sin(ang);
        }
    expect_near_all(y, ref, 2e-4, rd == 8 ? "rope partial" : "rope full");  // fp32 angle at pos 4097
    for (int64_t i = rd; i < hd; ++i) EXPECT_EQ(y[size_t(hd + i)], x[size_t(hd + i)]) << "pass-through dim " << i;
  }
}

// o_t = sum_{tau <= t} lambda^(t - tau) (q_t . k_tau) v_tau, per head.
std::vector<double> lightning_ref(const std::vector<float>& qkv, int64_t T, int64_t nh, int64_t d,
                                  const std::vector<float>& slopes) {
  std::vector<double> o(static_cast<size_t>(T * nh * d), 0.0);
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s <= t; ++s) {
        const float* q = &qkv[size_t(t * 3 * nh * d + h * 3 * d)];
        const float* k = &qkv[size_t(s * 3 * nh * d + h * 3 * d + d)];
        const float* v = k + d;
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += double(q[c]) * k[c];
        const double w = std::exp(-double(slopes[size_t(h)]) * double(t - s)) * dot;
        for (int64_t c = 0; c < d; ++c) o[size_t(t * nh * d + h * d + c)] += w * v[c];
      }
  return o;
}

TEST(CpuOps, LightningChunkedAndRecurrentMatchTheDefinition) {
  auto be = make_cpu_backend();
  const int64_t nh = 3, d = 16, T = 29, D = 4;
  std::vector<float> slopes = {0.9f, 0.1f, 0.01f};
  auto qkv = randn(size_t((T + D) * 3 * nh * d), 6, 0.5f);
  const auto ref = lightning_ref(qkv, T + D, nh, d, slopes);
  for (int64_t B : {1, 4, 7, 29, 256}) {
    std::vector<float> S(static_cast<size_t>(nh * d * d), 0.f), out(size_t((T + D) * nh * d));
    LightningParams p{nh, d, slopes.data(), B};
    be->lightning_prefill(qkv.data(), T, p, S.data(), out.data());
    float* sp = S.data();
    for (int64_t t = T; t < T + D; ++t)  // then recurrent decode from the prefill's state
      be->lightning_decode(qkv.data() + t * 3 * nh * d, 1, p, &sp, out.data() + t * nh * d);
    expect_near_all(out, ref, 1e-4, ("lightning block " + std::to_string(B)).c_str());
  }
}

TEST(CpuOps, SlopesFollowM1IncludingNonPowerOfTwoHeads) {
  auto s8 = lightning_slopes(8, 0, 1);
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(s8[size_t(j)], std::pow(2.0, -(j + 1.0)) * (1 + 1e-5), 1e-7);
  // 6 heads: the 4-head slopes, then every other one of the 8-head slopes (ALiBi's interleave).
  auto s6 = lightning_slopes(6, 0, 1);
  const double want[6] = {1 / 4., 1 / 16., 1 / 64., 1 / 256., 1 / 2., 1 / 8.};
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(s6[size_t(j)], want[j] * (1 + 1e-5), 1e-7);
  // Layer factor 1 - l/(L-1) + 1e-5.
  auto s = lightning_slopes(4, 3, 7);
  EXPECT_NEAR(s[0], std::pow(2.0, -2.0) * (1 - 3.0 / 6 + 1e-5), 1e-8);
}

TEST(CpuOps, PagedCausalGqaAttentionMatchesSoftmaxDefinition) {
  auto be = make_cpu_backend();
  const int64_t nh = 4, nkv = 2, d = 16, ps = 4, prev = 6, T = 7, L = prev + T;
  KvPoolShape sh{ps, nkv, d};
  std::vector<std::vector<float>> pages(5, std::vector<float>(size_t(sh.floats_per_page())));
  std::vector<float*> base;
  for (auto& p : pages) base.push_back(p.data());
  std::vector<int32_t> order = {3, 0, 4, 1};  // pages out of order on purpose
  auto k = randn(size_t(L * nkv * d), 7), v = randn(size_t(L * nkv * d), 8), q = randn(size_t(L * nh * d), 9);
  be->kv_write(base.data(), sh, KvSeq{order.data(), 0}, k.data(), v.data(), prev);
  be->kv_write(base.data(), sh, KvSeq{order.data(), prev}, k.data() + prev * nkv * d, v.data() + prev * nkv * d, T);
  std::vector<float> out(static_cast<size_t>(T * nh * d));
  be->attention_prefill(q.data() + prev * nh * d, T, nh, base.data(), sh, KvSeq{order.data(), L}, out.data());
  std::vector<double> ref(out.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t pos = prev + t, g = h / (nh / nkv);
      std::vector<double> sc(static_cast<size_t>(pos + 1));
      double mx = -1e30, sum = 0;
      for (int64_t j = 0; j <= pos; ++j) {
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += double(q[size_t((pos * nh + h) * d + c)]) * k[size_t((j * nkv + g) * d + c)];
        sc[size_t(j)] = s / std::sqrt(double(d));
        mx = std::max(mx, sc[size_t(j)]);
      }
      for (auto& s : sc) sum += (s = std::exp(s - mx));
      for (int64_t c = 0; c < d; ++c) {
        double o = 0;
        for (int64_t j = 0; j <= pos; ++j) o += sc[size_t(j)] / sum * v[size_t((j * nkv + g) * d + c)];
        ref[size_t((t * nh + h) * d + c)] = o;
      }
    }
  expect_near_all(out, ref, 1e-5, "attention prefill");
  // Decode of the last position alone gives the same row.
  std::vector<float> one(static_cast<size_t>(nh * d));
  KvSeq seq{order.data(), L};
  be->attention_decode(q.data() + (L - 1) * nh * d, 1, nh, base.data(), sh, &seq, one.data());
  std::vector<double> last(ref.end() - nh * d, ref.end());
  expect_near_all(one, last, 1e-5, "attention decode");
}

TEST(CpuOps, MoeRoutesTopKRenormalizedAndRunsChosenExperts) {
  auto be = make_cpu_backend();
  const int64_t T = 11, H = 24, I = 20, E = 5, K = 2;
  Mat router(E, H, DType::F32, 10, 1.f);
  std::vector<Mat> w1, w2, w3;
  MoeWeights mw;
  mw.router = router.w;
  mw.top_k = K;
  for (int64_t e = 0; e < E; ++e) {
    w1.emplace_back(I, H, DType::BF16, uint32_t(20 + e));
    w3.emplace_back(I, H, DType::BF16, uint32_t(40 + e));
    w2.emplace_back(H, I, DType::BF16, uint32_t(60 + e));
  }
  for (int64_t e = 0; e < E; ++e) mw.w1.push_back(w1[size_t(e)].w), mw.w2.push_back(w2[size_t(e)].w), mw.w3.push_back(w3[size_t(e)].w);
  auto x = randn(size_t(T * H), 11);
  std::vector<float> out(static_cast<size_t>(T * H));
  be->moe(x.data(), T, mw, out.data());
  std::vector<double> ref(out.size(), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> p(static_cast<size_t>(E));
    double mx = -1e30, sum = 0;
    for (int64_t e = 0; e < E; ++e) {
      double s = 0;
      for (int64_t c = 0; c < H; ++c) s += double(x[size_t(t * H + c)]) * router.exact[size_t(e * H + c)];
      mx = std::max(mx, p[size_t(e)] = s);
    }
    for (auto& v : p) sum += (v = std::exp(v - mx));
    std::vector<int64_t> idx = {0, 1, 2, 3, 4};
    std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return p[size_t(a)] > p[size_t(b)]; });
    const double top = p[size_t(idx[0])] + p[size_t(idx[1])];
    for (int64_t k = 0; k < K; ++k) {
      const int64_t e = idx[size_t(k)];
      std::vector<double> h(static_cast<size_t>(I));
      for (int64_t i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int64_t c = 0; c < H; ++c) {
          g += double(x[size_t(t * H + c)]) * w1[size_t(e)].exact[size_t(i * H + c)];
          u += double(x[size_t(t * H + c)]) * w3[size_t(e)].exact[size_t(i * H + c)];
        }
        h[size_t(i)] = g / (1 + std::exp(-g)) * u;
      }
      for (int64_t c = 0; c < H; ++c) {
        double s = 0;
        for (int64_t i = 0; i < I; ++i) s += h[size_t(i)] * w2[size_t(e)].exact[size_t(c * I + i)];
        ref[size_t(t * H + c)] += p[size_t(e)] / top * s;
      }
    }
  }
  expect_near_all(out, ref, 1e-4, "moe");
}

}  // namespace
