// Kernel lab: MoE decode at M1's expert shape (H = 6144, I = 9216, 32 experts, top-2, bf16
// weights): routing + grouped GEMV experts + combine (engine/cuda/moe.h). Checked against a CPU
// reference on a small shape first. Floor: the chosen experts' weights read once (3 matrices of
// I x H bf16 per distinct chosen expert) at the measured copy rate.
// Build: CMake target bench_cuda_moe.
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <vector>

#include "bench/cuda/bench_common.h"
#include "engine/cuda/moe.h"

using namespace m1::bench;
using namespace m1::cuda;

namespace {

struct Moe {
  int E, k, H, I;
  MoeExperts w1{}, w2{}, w3{};
  std::vector<void*> keep;
  Moe(int E_, int k_, int H_, int I_) : E(E_), k(k_), H(H_), I(I_) {
    for (int e = 0; e < E; ++e) {
      w1.w[e] = dev_random<bf16>((size_t)I * H, 100 + e, 0.02f);
      w3.w[e] = dev_random<bf16>((size_t)I * H, 200 + e, 0.02f);
      w2.w[e] = dev_random<bf16>((size_t)H * I, 300 + e, 0.02f);
      keep.insert(keep.end(), {(void*)w1.w[e], (void*)w2.w[e], (void*)w3.w[e]});
    }
  }
  ~Moe() { for (void* p : keep) cudaFree(p); }
};

struct Bufs {
  float *logits, *x, *tw, *h, *y, *out;
  int32_t *ids, *off, *act, *sorted;
  Bufs(int T, const Moe& m, uint32_t seed) {
    logits = dev_random<float>((size_t)T * m.E, seed, 2.f);
    x = dev_random<float>((size_t)T * m.H, seed + 1, 1.f);
    M1_CUDA_CHECK(cudaMalloc(&tw, (size_t)T * m.k * 4));
    M1_CUDA_CHECK(cudaMalloc(&h, (size_t)T * m.k * m.I * 4));
    M1_CUDA_CHECK(cudaMalloc(&y, (size_t)T * m.k * m.H * 4));
    M1_CUDA_CHECK(cudaMalloc(&out, (size_t)T * m.H * 4));
    M1_CUDA_CHECK(cudaMalloc(&ids, (size_t)T * m.k * 4));
    M1_CUDA_CHECK(cudaMalloc(&off, (m.E + 1) * 4));
    M1_CUDA_CHECK(cudaMalloc(&act, (m.E + 1) * 4));
    M1_CUDA_CHECK(cudaMalloc(&sorted, (size_t)T * m.k * 4));
  }
  ~Bufs() { for (void* p : {(void*)logits, (void*)x, (void*)tw, (void*)h, (void*)y, (void*)out, (void*)ids, (void*)off, (void*)act, (void*)sorted}) cudaFree(p); }
  void run(int T, const Moe& m) {
    moe_route(logits, T, m.E, m.k, tw, ids, off, act, sorted, nullptr);
    moe_experts_gate_up(x, m.k, m.w1, m.w3, WDType::BF16, m.E, off, act, sorted, (int64_t)T * m.k, h, m.I, m.H, nullptr);
    moe_experts_down(h, m.w2, WDType::BF16, m.E, off, act, sorted, (int64_t)T * m.k, y, m.H, m.I, nullptr);
    moe_combine(y, tw, T, m.k, m.H, out, nullptr);
  }
};

bool verify() {
  const int T = 5, E = 6, k = 2, H = 128, I = 96;
  Moe m(E, k, H, I);
  Bufs b(T, m, 9);
  b.run(T, m);
  const auto got = download_f(b.out, (size_t)T * H);
  const auto lg = download_f(b.logits, (size_t)T * E), x = download_f(b.x, (size_t)T * H);
  std::vector<std::vector<float>> w1(E), w2(E), w3(E);
  for (int e = 0; e < E; ++e) {
    w1[e] = download_f((const bf16*)m.w1.w[e], (size_t)I * H);
    w3[e] = download_f((const bf16*)m.w3.w[e], (size_t)I * H);
    w2[e] = download_f((const bf16*)m.w2.w[e], (size_t)H * I);
  }
  std::vector<double> ref((size_t)T * H, 0.0);
  for (int t = 0; t < T; ++t) {
    std::vector<double> p(E);
    double mx = -1e300, den = 0;
    for (int e = 0; e < E; ++e) mx = std::max(mx, (double)lg[t * E + e]);
    for (int e = 0; e < E; ++e) den += (p[e] = std::exp(lg[t * E + e] - mx));
    std::vector<int> idx(E);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int c) { return p[a] > p[c]; });
    const double sel = p[idx[0]] + p[idx[1]];
    for (int s = 0; s < k; ++s) {
      const int e = idx[s];
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
        double a = 0;
        for (int i = 0; i < I; ++i) a += (double)w2[e][(size_t)j * I + i] * hh[i];
        ref[(size_t)t * H + j] += p[e] / sel * a;
      }
    }
  }
  return check("moe T=5 E=6 H=128 I=96", rel_err(got, ref), 1e-5);
}

}  // namespace

int main() {
  std::printf("device: %s\n", device_name().c_str());
  if (!verify()) {
    std::printf("correctness failed: not timing\n");
    return 1;
  }
  const double bw = copy_gbps();
  std::printf("copy bandwidth %.0f GB/s\n", bw);
  Moe m(32, 2, 6144, 9216);
  for (int T : {1, 8, 32}) {
    Bufs b(T, m, 50 + T);
    const double ms = time_ms([&] { b.run(T, m); }, 20);
    // distinct chosen experts
    M1_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int32_t> ids((size_t)T * 2);
    M1_CUDA_CHECK(cudaMemcpy(ids.data(), b.ids, ids.size() * 4, cudaMemcpyDeviceToHost));
    const size_t distinct = std::set<int32_t>(ids.begin(), ids.end()).size();
    const double bytes = (double)distinct * 3 * 6144.0 * 9216.0 * 2;
    const double floor_us = bytes / (bw * 1e9) * 1e6;
    row("moe_decode", "T=" + std::to_string(T) + " experts=" + std::to_string(distinct) + " bf16", ms * 1e3,
        fmt("%.0f GB/s", bytes / (ms * 1e-3) / 1e9), fmt("%.2fx floor", ms * 1e3 / floor_us));
    std::printf("JSON {\"op\":\"moe_decode\",\"T\":%d,\"experts\":%zu,\"us\":%.2f,\"floor_us\":%.2f}\n", T, distinct,
                ms * 1e3, floor_us);
  }
  return 0;
}
