// The CPU backend's thread pool (engine/cpu/parallel.h): every item runs exactly once for any
// count and grain, a call from inside a chunk runs inline, callers on several threads at once all
// finish (a busy pool runs the loser inline), and results split across threads equal the same
// rows computed one at a time, bit for bit (the decode GEMV and the one-token MoE road).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/parallel.h"

using namespace m1::engine;

namespace {

TEST(CpuParallel, EveryItemRunsExactlyOnce) {
  ASSERT_GE(cpu::num_threads(), 1);
  for (int64_t n : {1, 2, 3, 7, 64, 1000, 100003})
    for (int64_t grain : {1, 3, 64, 5000, 200000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      cpu::parallel_for(n, grain, [&](int64_t lo, int64_t hi) {
        EXPECT_LE(hi - lo, grain);
        for (int64_t i = lo; i < hi; ++i) hits[size_t(i)].fetch_add(1);
      });
      int64_t wrong = 0;
      for (auto& h : hits) wrong += h.load() != 1;
      EXPECT_EQ(wrong, 0) << "n=" << n << " grain=" << grain;
    }
}

TEST(CpuParallel, NestedCallsRunInlineAndConcurrentCallersAllFinish) {
  std::atomic<int64_t> sum{0};
  cpu::parallel_for(64, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      cpu::parallel_for(100, 10, [&](int64_t a, int64_t b) { sum += b - a; });
  });
  EXPECT_EQ(sum.load(), 64 * 100);
  std::vector<std::thread> callers;
  std::vector<int64_t> totals(8, 0);
  for (int c = 0; c < 8; ++c)
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 200; ++rep) {
        std::atomic<int64_t> s{0};
        cpu::parallel_for(1000, 7, [&](int64_t lo, int64_t hi) { s += hi - lo; });
        totals[size_t(c)] += s.load();
      }
    });
  for (auto& t : callers) t.join();
  for (int64_t t : totals) EXPECT_EQ(t, 200 * 1000);
}

std::vector<uint16_t> bf16_randn(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 0.3f);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16(d(g));
  return v;
}

// A matmul big enough to be split across threads equals each row computed alone (one-row weight
// views run inline), for K with and without a 16-element tail and N not a multiple of 4.
TEST(CpuParallel, SplitGemvEqualsRowByRowBitForBit) {
  auto be = make_cpu_backend();
  for (int64_t K : {64, 300}) {
    const int64_t N = 4099;
    auto h = bf16_randn(size_t(N * K), 1);
    Weight W{DType::BF16, N, K, h.data()};
    std::mt19937 g(2);
    std::normal_distribution<float> d;
    std::vector<float> x(static_cast<size_t>(K));
    for (auto& v : x) v = d(g);
    std::vector<float> y(static_cast<size_t>(N)), one(1);
    be->matmul(x.data(), 1, W, y.data(), false);
    int64_t diff = 0;
    for (int64_t r = 0; r < N; ++r) {
      Weight row{DType::BF16, 1, K, h.data() + r * K};
      be->matmul(x.data(), 1, row, one.data(), false);
      diff += one[0] != y[size_t(r)];
    }
    EXPECT_EQ(diff, 0) << "K=" << K;
  }
}

// The one-token MoE road gives the bits of the same token in a small batch (where each expert
// sees few tokens and takes the same GEMV).
TEST(CpuParallel, OneTokenMoeEqualsTheSameTokenInABatch) {
  auto be = make_cpu_backend();
  const int64_t H = 256, I = 512, E = 4, T = 3;
  std::vector<float> router(static_cast<size_t>(E * H));
  std::mt19937 g(3);
  std::normal_distribution<float> d;
  for (auto& v : router) v = d(g);
  std::vector<std::vector<uint16_t>> mats;
  MoeWeights mw;
  mw.router = Weight{DType::F32, E, H, router.data()};
  mw.top_k = 2;
  for (int64_t e = 0; e < E; ++e) {
    mats.push_back(bf16_randn(size_t(I * H), uint32_t(10 + e)));
    mw.w1.push_back(Weight{DType::BF16, I, H, mats.back().data()});
    mats.push_back(bf16_randn(size_t(I * H), uint32_t(20 + e)));
    mw.w3.push_back(Weight{DType::BF16, I, H, mats.back().data()});
    mats.push_back(bf16_randn(size_t(H * I), uint32_t(30 + e)));
    mw.w2.push_back(Weight{DType::BF16, H, I, mats.back().data()});
  }
  std::vector<float> x(static_cast<size_t>(T * H));
  for (auto& v : x) v = d(g);
  std::vector<float> batch(static_cast<size_t>(T * H)), one(static_cast<size_t>(H));
  be->moe(x.data(), T, mw, batch.data());
  for (int64_t t = 0; t < T; ++t) {
    be->moe(x.data() + t * H, 1, mw, one.data());
    int64_t diff = 0;
    for (int64_t c = 0; c < H; ++c) diff += one[size_t(c)] != batch[size_t(t * H + c)];
    EXPECT_EQ(diff, 0) << "token " << t;
  }
}

}  // namespace
