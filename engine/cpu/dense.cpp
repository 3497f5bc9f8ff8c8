// CPU backend, dense part: memory, weight views, matmul, embedding, RMSNorm and elementwise ops.
// Matmul picks one of two paths: up to kGemvRows activation rows (decode) each output row's weights
// are read once from the map and dotted with every activation row in fp32 (bandwidth-bound, so the
// bf16->fp32 conversion rides along for free); above that (prefill) tiles of weight rows are
// converted to fp32 and handed to OpenBLAS sgemm, whose blocking beats plain loops by ~10x.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

#ifdef M1_HAVE_CBLAS
#include <cblas.h>
// Declared here too for BLAS builds whose cblas.h lacks it (then the weak symbol is null).
extern "C" void openblas_set_num_threads(int num_threads);
#pragma weak openblas_set_num_threads
#endif

namespace m1::engine::cpu {
namespace {

constexpr int64_t kGemvRows = 8;

#define M1_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))

// Below this many multiply-adds a chunk of work is not worth handing to another thread (the
// hand-over costs about a microsecond; 64K bf16 multiply-adds read 128 KB, several microseconds).
constexpr int64_t kMinChunkMacs = int64_t(1) << 16;

M1_SIMD_CLONES void bf16_to_f32_n(const uint16_t* src, int64_t n, float* dst) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(src[i]) << 16;
    std::memcpy(&dst[i], &u, 4);
  }
}

// Decode-sized products: rows of W split across the pool in chunks of whole 4-row groups.
void matmul_rows(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) {
  const int64_t N = W.rows, K = W.cols;
  int64_t grain = grain_for(N, kMinChunkMacs / std::max<int64_t>(1, K * T));
  grain = (grain + 3) / 4 * 4;
  parallel_for(N, grain, [&](int64_t lo, int64_t hi) { gemv_rows(W, lo, hi, x, T, y, N, accumulate); });
}

#ifdef M1_HAVE_CBLAS
// OpenBLAS runs single-threaded inside the pool's threads: each thread converts its own tile of
// weight rows and multiplies it. (OpenBLAS's own threads and the pool's spinning workers would
// otherwise fight over the same cores.) Weak, so another BLAS without this call still links.
void single_threaded_blas() {
  static const bool once = [] {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

void matmul_blas(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) {
  single_threaded_blas();
  const int64_t N = W.rows, K = W.cols;
  const float beta = accumulate ? 1.f : 0.f;
  // Tiles of ~1 MB of converted weights (L2-sized), at least 32 rows, and at least one per thread.
  const int64_t per_thread = (N + num_threads() - 1) / num_threads();
  const int64_t rb = std::clamp<int64_t>((int64_t(1) << 18) / K, 32, std::max<int64_t>(32, per_thread));
  const int64_t tiles = (N + rb - 1) / rb;
  // Products under ~1M multiply-adds run on the calling thread.
  parallel_for(tiles, T * N * K > (int64_t(1) << 20) ? 1 : tiles, [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> tile;
    if (W.dtype != DType::F32) tile.resize(size_t(rb * K));
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t r0 = i * rb, nr = std::min(rb, N - r0);
      const float* w = static_cast<const float*>(W.data) + r0 * K;
      if (W.dtype != DType::F32) {
        for (int64_t r = 0; r < nr; ++r) load_row(W, r0 + r, 0, K, tile.data() + r * K);
        w = tile.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(nr), int(K), 1.f, x, int(K), w, int(K), beta,
                  y + r0, int(N));
    }
  });
}
#endif

}  // namespace

void load_row(const Weight& W, int64_t r, int64_t c0, int64_t n, float* dst) {
  const int64_t off = r * W.cols + c0;
  switch (W.dtype) {
    case DType::F32: std::memcpy(dst, static_cast<const float*>(W.data) + off, size_t(n) * 4); break;
    case DType::BF16: bf16_to_f32_n(static_cast<const uint16_t*>(W.data) + off, n, dst); break;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(W.data) + off;
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      break;
    }
    default: std::abort();  // upload_weight admits only F32/BF16/F16
  }
}

Result<Buffer> CpuBackend::alloc(size_t bytes) {
  size_t rounded = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) return make_error("cpu backend: out of memory allocating " + std::to_string(bytes) + " bytes");
  return Buffer(this, p, bytes);
}
void CpuBackend::free_device(void* data) { std::free(data); }
void CpuBackend::copy_to_device(void* d, const void* s, size_t n) { if (n) std::memcpy(d, s, n); }
void CpuBackend::copy_to_host(void* d, const void* s, size_t n) { if (n) std::memcpy(d, s, n); }
void CpuBackend::copy_device(void* d, const void* s, size_t n) { if (n) std::memmove(d, s, n); }
void CpuBackend::fill_zero(void* d, size_t n) { if (n) std::memset(d, 0, n); }

Result<Weight> CpuBackend::upload_weight(const TensorView& t) {
  auto w = describe_weight(t);
  if (w.ok()) w->data = t.data;  // used in place from the memory map
  return w;
}

void CpuBackend::matmul(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) {
#ifdef M1_HAVE_CBLAS
  if (T > kGemvRows) return matmul_blas(x, T, W, y, accumulate);
#endif
  matmul_rows(x, T, W, y, accumulate);
}

void CpuBackend::embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) {
  for (int64_t t = 0; t < T; ++t) load_row(E, ids[t], 0, E.cols, y + t * E.cols);
}

void CpuBackend::rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) {
  thread_local std::vector<float> wf;  // the norm weight in fp32 (no allocation per call)
  wf.resize(size_t(n));
  load_row(w, 0, 0, n, wf.data());
  const float* wp = wf.data();
  parallel_for(T, std::max<int64_t>(1, (int64_t(1) << 16) / n), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const float* xr = x + t * n;
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * xr[i];
      const float r = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
      float* yr = y + t * n;
      for (int64_t i = 0; i < n; ++i) yr[i] = wp[i] * (xr[i] * r);
    }
  });
}

// Elementwise ops: split only above 64K elements (a few microseconds of work); ops with an exp
// per element cost ~3 ns each (libm, not vectorized), so they split from 8K elements.
constexpr int64_t kElementwiseGrain = 65536, kExpGrain = 8192;

void CpuBackend::axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) {
  parallel_for(n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) y[i] = alpha * a[i] + beta * b[i];
  });
}

void CpuBackend::silu(float* x, int64_t n) {
  parallel_for(n, kExpGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) x[i] = x[i] / (1.f + std::exp(-x[i]));
  });
}

void CpuBackend::sigmoid_mul(const float* gate, const float* x, int64_t T, int64_t n, float* y) {
  parallel_for(T * n, kExpGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = x[i] / (1.f + std::exp(-gate[i]));
  });
}

}  // namespace m1::engine::cpu

namespace m1::engine {
std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }
}  // namespace m1::engine
