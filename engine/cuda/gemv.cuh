// Warp-per-row GEMV building blocks shared by the grouped expert kernels (moe.cu) and the dense
// decode GEMV (gemm.cu): 16-byte weight loads in the stored dtype, up to kTok activation rows (fp32)
// per pass, 4 steps unrolled so several loads per lane are in flight. Included by .cu files only.
#pragma once
#include "engine/cuda/wtype.cuh"

namespace m1::cuda {

constexpr int kTok = 4;

template <typename WT> struct VecW { static constexpr int n = 16 / sizeof(WT); };

// acc_a[j] += dot(row_a, x_j), acc_b[j] += dot(row_b, x_j) (TWO: both rows in one pass, so twice
// the loads are in flight) over this lane's share of K; 16-byte weight loads, 4 steps unrolled.
template <typename WT, bool TWO>
__device__ __forceinline__ void dot_rows(const WT* __restrict__ ra, const WT* __restrict__ rb,
                                         const float* const* xr, int ntok, int K, int lane, float* acc_a,
                                         float* acc_b) {
  constexpr int n = VecW<WT>::n;
  const int kv = (K / n) * n;
#pragma unroll 4
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
    for (int j = 0; j < kTok; ++j) {
      if (j < ntok) {
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
    for (int j = 0; j < kTok; ++j)
      if (j < ntok) {
        acc_a[j] += va * xr[j][c];
        if (TWO) acc_b[j] += vb * xr[j][c];
      }
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// A team of S warps (S consecutive warps of the CTA, S | warps per CTA) computes dot(row_a, x_j)
// (and dot(row_b, x_j) when TWO) for ntok <= kTok activation rows, each warp over K / S contiguous
// columns, so all of a row's loads are in flight at once. xr[j] points at column 0 of row j.
// Every thread of the CTA must call it (it meets at __syncthreads); live = false for a team
// without a row (computes nothing). part_a/part_b: __shared__ [warps per CTA][kTok].
// On return, lane j < ntok of the team's first warp (part == 0) holds the sums in *sa, *sb.
// Needs K % (8 * S) == 0 so every segment starts on a 16-byte boundary.
template <typename WT, bool TWO, int S>
__device__ __forceinline__ void team_dot(const WT* __restrict__ ra, const WT* __restrict__ rb,
                                         const float* const* xr, int ntok, int K, bool live,
                                         float (*part_a)[kTok], float (*part_b)[kTok], float* sa, float* sb) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, part = warp % S;
  const int seg = K / S, k0 = part * seg;
  const float* xs[kTok];
#pragma unroll
  for (int j = 0; j < kTok; ++j) xs[j] = xr[j] + k0;
  float a[kTok] = {0.f, 0.f, 0.f, 0.f}, b[kTok] = {0.f, 0.f, 0.f, 0.f};
  if (live) dot_rows<WT, TWO>(ra + k0, TWO ? rb + k0 : ra, xs, ntok, seg, lane, a, b);
#pragma unroll
  for (int j = 0; j < kTok; ++j) {
    const float ra_sum = warp_sum(a[j]);
    const float rb_sum = TWO ? warp_sum(b[j]) : 0.f;
    if (lane == 0) {
      part_a[warp][j] = ra_sum;
      part_b[warp][j] = rb_sum;
    }
  }
  __syncthreads();
  float ta = 0.f, tb = 0.f;
  if (part == 0 && lane < ntok) {
#pragma unroll
    for (int q = 0; q < S; ++q) {
      ta += part_a[warp + q][lane];
      if (TWO) tb += part_b[warp + q][lane];
    }
  }
  __syncthreads();  // part_a/part_b are free again for the caller's next pass
  *sa = ta;
  *sb = tb;
}

}  // namespace m1::cuda
