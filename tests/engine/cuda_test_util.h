// Helpers for the CUDA tests (tests/engine/test_cuda_*.cpp): skip without a GPU, device buffers,
// random data, bf16 rounding, relative-error comparison printing the first mismatches.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/cuda/cuda_common.h"

namespace m1::cuda::testing {

#define M1_SKIP_WITHOUT_GPU()                                                  \
  do {                                                                         \
    if (!::m1::cuda::device_available()) GTEST_SKIP() << "no CUDA device";     \
  } while (0)

// A device allocation of n elements of T, poisoned (all bytes 0xFF: NaN for floats and bf16).
template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) {
    M1_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T)));
    M1_CUDA_CHECK(cudaMemset(p, 0xFF, std::max<size_t>(1, n) * sizeof(T)));
  }
  DevBuf(const std::vector<T>& h) : DevBuf(h.size()) { upload(h); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void upload(const std::vector<T>& h) {
    M1_CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n);
    M1_CUDA_CHECK(cudaDeviceSynchronize());
    M1_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

inline float bf16_round(float f) { return __bfloat162float(__float2bfloat16(f)); }
inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = __float2bfloat16(v[i]);
  return o;
}
inline std::vector<float> from_bf16(const std::vector<bf16>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = __bfloat162float(v[i]);
  return o;
}

inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.f, float mean = 0.f) {
  std::normal_distribution<float> d(mean, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// ||got - ref|| / ||ref|| <= tol, every element finite; prints the first mismatches.
inline ::testing::AssertionResult close_rel(const std::vector<float>& got, const std::vector<double>& ref, double tol,
                                            const char* what) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << what << ": size mismatch";
  double num = 0, den = 0;
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      if (bad++ < 5) first += " [" + std::to_string(i) + "] not finite;";
      continue;
    }
    const double d = got[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  const double rel = std::sqrt(num / std::max(den, 1e-300));
  if (bad || !(rel <= tol)) {
    for (size_t i = 0, shown = 0; i < got.size() && shown < 5; ++i)
      if (std::fabs(got[i] - ref[i]) > 10 * tol * (std::fabs(ref[i]) + 1e-3)) {
        first += " [" + std::to_string(i) + "] got " + std::to_string(got[i]) + " ref " + std::to_string(ref[i]) + ";";
        ++shown;
      }
    return ::testing::AssertionFailure() << what << ": rel err " << rel << " (tol " << tol << "), " << bad
                                         << " non-finite;" << first;
  }
  return ::testing::AssertionSuccess() << what << ": rel err " << rel;
}

}  // namespace m1::cuda::testing
