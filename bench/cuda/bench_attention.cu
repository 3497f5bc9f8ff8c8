// Kernel lab: softmax-attention decode over a paged KV cache (engine/cuda/attention.h), M1's
// softmax layer shape (64 query heads, 8 KV heads, D = 128), bf16 and fp32 caches. Checked against
// a CPU softmax first. Floor: K and V of every visible token read once at the measured copy rate.
// Build: CMake target bench_cuda_attention.
#include <cmath>
#include <cstdio>
#include <vector>

#include "bench/cuda/bench_common.h"
#include "engine/cuda/attention.h"

using namespace m1::bench;
using namespace m1::cuda;

namespace {

template <typename T>
struct Cache {
  T* pool = nullptr;
  T** table = nullptr;
  int max_pages = 0;
  std::vector<T*> host_table;
  Cache(int B, int len, int Hkv, int D, int ps, uint32_t seed) {
    max_pages = (len + ps - 1) / ps;
    const size_t pe = 2ull * ps * Hkv * D;
    pool = dev_random<T>((size_t)B * max_pages * pe, seed, 1.f);
    host_table.resize((size_t)B * max_pages);
    for (size_t i = 0; i < host_table.size(); ++i)  // pages interleaved across sessions
      host_table[i] = pool + ((i % B) * max_pages + i / B) * pe;
    M1_CUDA_CHECK(cudaMalloc(&table, host_table.size() * sizeof(T*)));
    M1_CUDA_CHECK(cudaMemcpy(table, host_table.data(), host_table.size() * sizeof(T*), cudaMemcpyHostToDevice));
  }
  ~Cache() { cudaFree(pool); cudaFree(table); }
};

template <typename T>
double run(int B, int len, bool verify, double bw, const char* tname) {
  const int Hq = 64, Hkv = 8, D = 128, ps = 64;
  Cache<T> c(B, len, Hkv, D, ps, 3);
  T* q = dev_random<T>((size_t)B * Hq * D, 4, 1.f);
  T* out;
  M1_CUDA_CHECK(cudaMalloc(&out, (size_t)B * Hq * D * sizeof(T)));
  std::vector<int> qs(B), ql(B, len);
  for (int b = 0; b < B; ++b) qs[b] = b;
  int *dqs, *dql;
  M1_CUDA_CHECK(cudaMalloc(&dqs, B * 4));
  M1_CUDA_CHECK(cudaMalloc(&dql, B * 4));
  M1_CUDA_CHECK(cudaMemcpy(dqs, qs.data(), B * 4, cudaMemcpyHostToDevice));
  M1_CUDA_CHECK(cudaMemcpy(dql, ql.data(), B * 4, cudaMemcpyHostToDevice));
  void* ws;
  M1_CUDA_CHECK(cudaMalloc(&ws, attention_workspace_bytes(B, Hq, D, len)));
  PagedKV<T> kv{c.table, c.max_pages, ps, Hkv, D};
  const float scale = 1.f / std::sqrt(128.f);
  auto fn = [&] { attention_paged<T>(q, Hq * D, dqs, dql, B, Hq, len, kv, scale, out, ws, nullptr); };
  double result = 0;
  if (verify) {
    fn();
    const auto got = download_f(out, (size_t)B * Hq * D);
    const auto qh = download_f(q, (size_t)B * Hq * D);
    const size_t pe = 2ull * ps * Hkv * D;
    const auto pool = download_f(c.pool, (size_t)B * c.max_pages * pe);
    std::vector<double> ref((size_t)B * Hq * D, 0.0);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < Hq; ++h) {
        std::vector<double> s(len);
        double mx = -1e300, den = 0;
        auto page = [&](int p) { return pool.data() + (c.host_table[(size_t)b * c.max_pages + p / ps] - c.pool); };
        for (int p = 0; p < len; ++p) {
          const float* k = page(p) + ((size_t)(p % ps) * Hkv + h / 8) * D;
          double d = 0;
          for (int i = 0; i < D; ++i) d += (double)qh[((size_t)b * Hq + h) * D + i] * k[i];
          mx = std::max(mx, s[p] = d * scale);
        }
        for (auto& v : s) den += (v = std::exp(v - mx));
        for (int p = 0; p < len; ++p) {
          const float* v = page(p) + (size_t)ps * Hkv * D + ((size_t)(p % ps) * Hkv + h / 8) * D;
          for (int i = 0; i < D; ++i) ref[((size_t)b * Hq + h) * D + i] += s[p] / den * v[i];
        }
      }
    result = check((std::string("attention ") + tname + " B=" + std::to_string(B) + " len=" + std::to_string(len)).c_str(),
                   rel_err(got, ref), sizeof(T) == 2 ? 1e-2 : 1e-5) ? 1 : 0;
  } else {
    const double ms = time_ms(fn, 30);
    const double bytes = (double)B * len * Hkv * D * 2 * sizeof(T);
    const double floor_us = bytes / (bw * 1e9) * 1e6;
    row("attention_decode", "B=" + std::to_string(B) + " ctx=" + std::to_string(len) + " " + tname, ms * 1e3,
        fmt("%.0f GB/s", bytes / (ms * 1e-3) / 1e9), fmt("%.2fx floor", ms * 1e3 / floor_us));
    std::printf("JSON {\"op\":\"attention_decode\",\"B\":%d,\"ctx\":%d,\"kv\":\"%s\",\"us\":%.2f,\"floor_us\":%.2f}\n", B,
                len, tname, ms * 1e3, floor_us);
  }
  cudaFree(q); cudaFree(out); cudaFree(dqs); cudaFree(dql); cudaFree(ws);
  return result;
}

}  // namespace

int main() {
  std::printf("device: %s\n", device_name().c_str());
  bool ok = run<bf16>(2, 3000, true, 0, "bf16") > 0;
  ok = run<float>(1, 777, true, 0, "f32") > 0 && ok;
  if (!ok) {
    std::printf("correctness failed: not timing\n");
    return 1;
  }
  const double bw = copy_gbps();
  std::printf("copy bandwidth %.0f GB/s\n", bw);
  for (int len : {1024, 16384, 65536}) run<bf16>(1, len, false, bw, "bf16");
  run<float>(1, 65536, false, bw, "f32");
  run<bf16>(32, 4096, false, bw, "bf16");
  return 0;
}
