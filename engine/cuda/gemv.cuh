// Warp-per-row GEMV building blocks shared by the grouped expert kernels (moe.cu) and the dense
// decode GEMV (gemm.cu): 16-byte weight loads in the stored dtype, up to kTok activation rows (fp32)
// per pass, 4 steps unrolled so several loads per lane are in flight. Included by .cu files only.
#pragma once
#include "engine/cuda/wtype.cuh"

namespace m1::cuda {

constexpr int kTok = 4;

template <typename WT> struct VecW { static constexpr int n = 16 / sizeof(WT); };

// acc_a[j] += dot(row_a, x_j), acc_b[j] += dot(row_b, x_j) (TWO: both rows in one pass, so twice
// the loads are in flight) over this lane's share of K; 16-byte weight loads, U steps unrolled.
// NT = 1: exactly one activation row (ntok ignored), no per-row branches in the loop.
template <typename WT, bool TWO, int U = 4, int NT = kTok>
__device__ __forceinline__ void dot_rows(const WT* __restrict__ ra, const WT* __restrict__ rb,
                                         const float* const* xr, int ntok, int K, int lane, float* acc_a,
                                         float* acc_b) {
  constexpr int n = VecW<WT>::n;
  const int kv = (K / n) * n;
#pragma unroll U
  for (int c = lane * n; c < kv; c += 32 * n) {
    const uint4 ua = *reinterpret_cast<const uint4*>(ra + c);
    uint4 ub = make_uint4(0, 0, 0, 0);
    if (TWO) ub = *reinterpret_cast<const uint4*>(rb + c);
    const WT* wa = reinterpret_cast<const WT*>(&ua);
    const WT* wb = reinterpret_cast<const WT*>(&ub);
    float fa[n], fb[n];
#pragma unroll
    for (int i = 0; i < n; ++i) {
      fa[i] = wf(wa[i]);
      fb[i] = TWO ? wf(wb[i]) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      if (NT == 1 || j < ntok) {
        const float* xp = xr[j] + c;
#pragma unroll
        for (int i = 0; i < n; i += 4) {
          const float4 xv = *reinterpret_cast<const float4*>(xp + i);
          acc_a[j] += fa[i] * xv.x + fa[i + 1] * xv.y + fa[i + 2] * xv.z + fa[i + 3] * xv.w;
          if (TWO) acc_b[j] += fb[i] * xv.x + fb[i + 1] * xv.y + fb[i + 2] * xv.z + fb[i + 3] * xv.w;
        }
      }
    }
  }
  for (int c = kv + lane; c < K; c += 32) {
    const float va = wf(ra[c]), vb = TWO ? wf(rb[c]) : 0.f;
#pragma unroll
    for (int j = 0; j < NT; ++j)
      if (NT == 1 || j < ntok) {
        acc_a[j] += va * xr[j][c];
        if (TWO) acc_b[j] += vb * xr[j][c];
      }
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace m1::cuda
