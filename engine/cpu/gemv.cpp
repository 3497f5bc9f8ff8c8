// CPU backend, the decode kernel: y[t, r] = dot(W row r, x[t]) for a range of weight rows and a
// few activation rows (batch-1 decode, MoE experts with few tokens). Bandwidth-bound: each weight
// row is read once from the memory map and converted to fp32 in registers.
// Decisions (measured on a 2-core AMD EPYC Zen 4 VM and the GPU machine's 16-core Xeon, reading
// a 307 MB bf16 matrix of 768 columns through the checkpoint's file mapping):
// - Long rows are read one at a time, front to back. Four rows side by side (four streams 1.5 KB
//   apart) halved the AMD core's bandwidth (8.4 vs 18.6-20.7 GB/s on one thread) and lost on the
//   Xeon too (65 vs 83 GB/s on 16 threads). Short rows (a 4-row block within 512 bytes, e.g. the
//   tiny model's 32-wide lm_head) go four at a time: one stream either way, and the reduction of
//   16 lanes to a sum, paid per row, is then shared among four independent chains.
// - Software prefetch 4 KB ahead (one per 64-byte line) on CPUs other than AMD: weights come
//   through a file mapping of 4 KB pages, and the Xeon's hardware prefetcher does not carry a
//   stream across a page: prefetching took it from 83 to 104 GB/s on 16 threads and from 12 to
//   19.6 on 2. The same prefetch cost Zen 4 15% (18.6 -> 16.2 GB/s), whose prefetcher needs no help.
// - Written with GCC vector types and compiled three times (target_clones: x86-64-v4, v3,
//   baseline). The lane layout and the reduction tree are fixed in the source, and this file is
//   built with -ffp-contract=off (engine/CMakeLists.txt): left free, GCC fused some products into
//   FMAs and not others, so the same row summed to different bits in the 4-row and 1-row loops
//   (seen with the GPU machine's GCC 13). Without FMA every clone, every compiler, both loops and
//   every split of the rows across threads give the same bits. Memory-bound: the extra add is free.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/cpu/cpu_backend.h"

// The vector-typed helpers below are always inlined into the cloned kernels, so no 64-byte vector
// ever crosses a call; GCC still warns about their ABI when it compiles them for the baseline.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace m1::engine::cpu {
namespace {

typedef float f32x16 __attribute__((vector_size(64)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

#define M1_INLINE inline __attribute__((always_inline))
#define M1_GEMV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

M1_INLINE f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
M1_INLINE f32x16 load16(const uint16_t* p) {  // bf16 -> f32 is the high half of the word
  u16x16 h;
  std::memcpy(&h, p, sizeof h);
  const u32x16 w = __builtin_convertvector(h, u32x16) << 16;
  f32x16 v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}
M1_INLINE float load1(const float* p) { return *p; }
M1_INLINE float load1(const uint16_t* p) {
  const uint32_t u = uint32_t(*p) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Sum of 16 lanes by a fixed tree: halves, then quarters, ...
M1_INLINE float hsum(f32x16 v) {
  const f32x8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const f32x4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// y[t * ldy + r] (=|+=) W[r] . x[t * K] for r in [r0, r1), t in [0, T). W: rows of K elements.
template <class E>
M1_INLINE void gemv_body(const E* W, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                         int64_t ldy, bool accumulate, bool prefetch) {
  const int64_t K16 = K / 16 * 16;
  constexpr int64_t kLine = 64 / int64_t(sizeof(E)), kAhead = 4096 / int64_t(sizeof(E));  // in elements
  auto tail = [&](const E* w, const float* xt) {
    float s = 0.f;
    for (int64_t k = K16; k < K; ++k) s += load1(w + k) * xt[k];
    return s;
  };
  auto store = [&](float* dst, float v) { *dst = accumulate ? *dst + v : v; };
  int64_t r = r0;
  if (4 * K * int64_t(sizeof(E)) <= 512) {
    for (; r + 4 <= r1; r += 4) {
      const E *w0 = W + r * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
      if (prefetch)
        for (int64_t b = 0; b < 4 * K; b += kLine) __builtin_prefetch(w0 + b + kAhead, 0, 3);
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + t * K;
        f32x16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (int64_t k = 0; k < K16; k += 16) {
          const f32x16 xv = load16(xt + k);
          a0 += load16(w0 + k) * xv;
          a1 += load16(w1 + k) * xv;
          a2 += load16(w2 + k) * xv;
          a3 += load16(w3 + k) * xv;
        }
        float* yt = y + t * ldy + r;
        store(yt + 0, hsum(a0) + tail(w0, xt));
        store(yt + 1, hsum(a1) + tail(w1, xt));
        store(yt + 2, hsum(a2) + tail(w2, xt));
        store(yt + 3, hsum(a3) + tail(w3, xt));
      }
    }
  }
  for (; r < r1; ++r) {
    const E* w0 = W + r * K;
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * K;
      f32x16 a0 = {};
      for (int64_t k = 0; k < K16; k += 16) {
        if (prefetch && t == 0 && k % kLine == 0) __builtin_prefetch(w0 + k + kAhead, 0, 3);
        a0 += load16(w0 + k) * load16(xt + k);
      }
      store(y + t * ldy + r, hsum(a0) + tail(w0, xt));
    }
  }
}

M1_GEMV_CLONES void gemv_f32(const float* W, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t T, float* y,
                             int64_t ldy, bool accumulate, bool prefetch) {
  gemv_body(W, K, r0, r1, x, T, y, ldy, accumulate, prefetch);
}
M1_GEMV_CLONES void gemv_bf16(const uint16_t* W, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t T,
                              float* y, int64_t ldy, bool accumulate, bool prefetch) {
  gemv_body(W, K, r0, r1, x, T, y, ldy, accumulate, prefetch);
}

// See the prefetch decision above; M1_PREFETCH=0/1 overrides (for measuring).
bool prefetch_wanted() {
  static const bool on = [] {
    if (const char* v = std::getenv("M1_PREFETCH"); v && *v) return std::strcmp(v, "0") != 0;
    __builtin_cpu_init();
    return !__builtin_cpu_is("amd");
  }();
  return on;
}

}  // namespace

void gemv_rows(const Weight& W, int64_t r0, int64_t r1, const float* x, int64_t T, float* y, int64_t ldy,
               bool accumulate) {
  const int64_t K = W.cols;
  switch (W.dtype) {
    case DType::F32:
      return gemv_f32(static_cast<const float*>(W.data), K, r0, r1, x, T, y, ldy, accumulate, prefetch_wanted());
    case DType::BF16:
      return gemv_bf16(static_cast<const uint16_t*>(W.data), K, r0, r1, x, T, y, ldy, accumulate, prefetch_wanted());
    default: {  // F16: rows converted one at a time (no checkpoint this engine targets ships f16)
      thread_local std::vector<float> row;
      row.resize(size_t(K));
      for (int64_t r = r0; r < r1; ++r) {
        load_row(W, r, 0, K, row.data());
        gemv_f32(row.data(), K, 0, 1, x, T, y + r, ldy, accumulate, false);
      }
    }
  }
}

}  // namespace m1::engine::cpu
