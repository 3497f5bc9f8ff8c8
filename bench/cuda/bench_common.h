// Kernel-lab helpers (bench/cuda/*.cu): event timing with L2 flushes, medians, the measured copy
// ceiling, random device data, and the output format: one "ROW" line per measurement for the
// table that scripts/gpu_check.sh prints last, one "JSON" line with the full numbers.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/ops.h"

namespace m1::bench {

using m1::cuda::bf16;

// Flushes L2 by writing a buffer larger than it (H100/H200: 50/60 MB).
inline void flush_l2() {
  static void* buf = nullptr;
  static size_t bytes = 0;
  if (!buf) {
    int dev = 0, l2 = 0;
    M1_CUDA_CHECK(cudaGetDevice(&dev));
    M1_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    bytes = std::max<size_t>(size_t(l2) * 4, 64u << 20);
    M1_CUDA_CHECK(cudaMalloc(&buf, bytes));
  }
  M1_CUDA_CHECK(cudaMemsetAsync(buf, 1, bytes));
}

// Median milliseconds of `reps` runs of fn (after `warm` runs), each timed with events; L2 flushed
// before each timed run when `flush`.
inline double time_ms(const std::function<void()>& fn, int reps = 20, int warm = 3, bool flush = true) {
  for (int i = 0; i < warm; ++i) fn();
  M1_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  M1_CUDA_CHECK(cudaEventCreate(&a));
  M1_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    if (flush) flush_l2();
    M1_CUDA_CHECK(cudaEventRecord(a));
    fn();
    M1_CUDA_CHECK(cudaEventRecord(b));
    M1_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    M1_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  M1_CUDA_CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Device-to-device copy bandwidth in GB/s (bytes read + written), 1 GiB.
inline double copy_gbps() {
  const size_t n = 1ull << 30;
  void *x, *y;
  M1_CUDA_CHECK(cudaMalloc(&x, n));
  M1_CUDA_CHECK(cudaMalloc(&y, n));
  M1_CUDA_CHECK(cudaMemset(x, 3, n));
  const double ms = time_ms([&] { M1_CUDA_CHECK(cudaMemcpyAsync(y, x, n, cudaMemcpyDeviceToDevice)); }, 10, 2, false);
  cudaFree(x);
  cudaFree(y);
  return 2.0 * n / (ms * 1e-3) / 1e9;
}

inline std::string device_name() {
  cudaDeviceProp p{};
  M1_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  return p.name;
}

// Normal(mean, scale) values generated on the device by the engine's own generator
// (ops.h fill_normal: hash + Box-Muller, never zeros), so multi-GB weights take milliseconds.
template <typename T>
T* dev_random(size_t n, uint32_t seed, float scale, float mean = 0.f) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "fp32 or bf16");
  T* p = nullptr;
  M1_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  ::m1::cuda::fill_normal(p, std::is_same_v<T, float> ? ::m1::cuda::WDType::F32 : ::m1::cuda::WDType::BF16,
                          (int64_t)n, seed, mean, scale, nullptr);
  return p;
}

template <typename T>
std::vector<float> download_f(const T* p, size_t n) {
  std::vector<T> h(n);
  M1_CUDA_CHECK(cudaDeviceSynchronize());
  M1_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = float(h[i]);
  return f;
}

// ||a - b|| / ||b||, NaN when any element is not finite.
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return NAN;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Prints PASS/FAIL for a correctness check; returns false on failure.
inline bool check(const char* what, double err, double tol) {
  const bool ok = std::isfinite(err) && err <= tol;
  std::printf("CHECK %-40s rel err %.3e (tol %.1e) %s\n", what, err, tol, ok ? "PASS" : "FAIL");
  return ok;
}

// One table row: op, shape, time, achieved rate, reference (floor or ceiling) and ratio.
inline void row(const std::string& op, const std::string& shape, double us, const std::string& rate,
                const std::string& vs) {
  std::printf("ROW | %-28s | %-30s | %10.1f us | %-22s | %s\n", op.c_str(), shape.c_str(), us, rate.c_str(),
              vs.c_str());
}

inline std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace m1::bench
