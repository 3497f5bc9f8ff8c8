// MoE routing and grouped expert GEMVs (see moe.h for the decisions).
#include <algorithm>
#include <cmath>

#include "engine/cuda/gemv.cuh"
#include "engine/cuda/moe.h"

namespace m1::cuda {
namespace {

// One warp per token: softmax over E (<= 128, 4 per lane), top-k by repeated argmax (lowest
// index wins ties), renormalize.
__device__ __forceinline__ void route_token(const float* __restrict__ logits, int64_t t, int E, int k, float* topk_w,
                                            int32_t* topk_ids, int lane) {
  float p[4];
  float mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int e = lane + 32 * i;
    p[i] = e < E ? logits[t * E + e] : -INFINITY;
    mx = fmaxf(mx, p[i]);
  }
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    p[i] = (lane + 32 * i) < E ? expf(p[i] - mx) : 0.f;
    sum += p[i];
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
#pragma unroll
  for (int i = 0; i < 4; ++i) p[i] /= sum;
  float chosen_sum = 0.f;
  float wsel[8];
  int isel[8];
  for (int s = 0; s < k; ++s) {
    float bv = -1.f;
    int bi = 1 << 30;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = lane + 32 * i;
      if (e < E && (p[i] > bv || (p[i] == bv && e < bi))) { bv = p[i]; bi = e; }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    wsel[s] = bv;
    isel[s] = bi;
    chosen_sum += bv;
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (lane + 32 * i == bi) p[i] = -2.f;  // taken
  }
  if (lane == 0)
    for (int s = 0; s < k; ++s) {
      topk_w[t * k + s] = wsel[s] / chosen_sum;
      topk_ids[t * k + s] = isel[s];
    }
}

__global__ void route_topk_kernel(const float* __restrict__ logits, int64_t T, int E, int k, float* topk_w,
                                  int32_t* topk_ids) {
  const int64_t t = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
  if (t < T) route_token(logits, t, E, k, topk_w, topk_ids, threadIdx.x & 31);
}

// One block: count pairs per expert, scan, scatter.
__device__ __forceinline__ void group_pairs(const int32_t* __restrict__ topk_ids, int64_t P, int E, int32_t* offsets,
                                            int32_t* active, int32_t* sorted_pairs) {
  __shared__ int cnt[kMaxExperts + 1], cur[kMaxExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int64_t p = threadIdx.x; p < P; p += blockDim.x) atomicAdd(&cnt[topk_ids[p]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = 0, na = 0;
    for (int e = 0; e < E; ++e) {
      const int c = cnt[e];
      offsets[e] = run;
      cur[e] = run;
      run += c;
      if (c > 0) active[1 + na++] = e;
    }
    offsets[E] = run;
    active[0] = na;
  }
  __syncthreads();
  for (int64_t p = threadIdx.x; p < P; p += blockDim.x) sorted_pairs[atomicAdd(&cur[topk_ids[p]], 1)] = (int32_t)p;
}

__global__ void route_group_kernel(const int32_t* __restrict__ topk_ids, int64_t P, int E, int32_t* offsets,
                                   int32_t* active, int32_t* sorted_pairs) {
  group_pairs(topk_ids, P, E, offsets, active, sorted_pairs);
}

// Decode-sized batches (T <= kRouteOneBlock): top-k and grouping in one single-block launch (two
// launches cost ~3.5 + 3 us per layer at T = 1, a fixed cost of every decode step).
constexpr int kRouteOneBlock = 64;
__global__ void __launch_bounds__(1024) route_small_kernel(const float* __restrict__ logits, int T, int E, int k,
                                                           float* topk_w, int32_t* topk_ids, int32_t* offsets,
                                                           int32_t* active, int32_t* sorted_pairs) {
  for (int t = threadIdx.x / 32; t < T; t += 32) route_token(logits, t, E, k, topk_w, topk_ids, threadIdx.x & 31);
  __syncthreads();  // the block's global writes of topk_ids are visible to it past the barrier
  group_pairs(topk_ids, (int64_t)T * k, E, offsets, active, sorted_pairs);
}

// Warps (rows) per CTA. Smaller CTAs schedule finer: on an H200, T = 1: 192.7 / 188.8 / 181.7 us
// with 8 / 4 / 2 warps, T = 32: 3822 / 3716 / 3613 us (T = 8: 1188 / 1137 / 1149); 1K decode step
// 3.336 / 3.309 / 3.237 ms.
constexpr int kWarps = 2;

// grid (ceil(N / kWarps), E), block 32*kWarps; warp -> output row. GATE: out = silu(w1 x)*(w3 x).
// x row of pair p is x + (p / x_div) * K. U1 > 0: an expert holding exactly one token takes a
// one-row loop unrolled U1 steps (the decode case).
template <typename WT, bool GATE, int U1>
__global__ void __launch_bounds__(32 * kWarps) moe_gemv_kernel(const float* __restrict__ x, int x_div, MoeExperts wa,
                                                               MoeExperts wb, const int32_t* __restrict__ offsets,
                                                               const int32_t* __restrict__ active,
                                                               const int32_t* __restrict__ sorted_pairs,
                                                               float* __restrict__ out, int N, int K,
                                                               bool vec_ok) {
  if ((int)blockIdx.y >= active[0]) return;  // grid y covers min(E, pairs) slots of the active list
  const int e = active[1 + blockIdx.y], row = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x & 31;
  const int beg = offsets[e], end = offsets[e + 1];
  if (beg == end || row >= N) return;
  const WT* ra = static_cast<const WT*>(wa.w[e]) + (size_t)row * K;
  const WT* rb = GATE ? static_cast<const WT*>(wb.w[e]) + (size_t)row * K : nullptr;
  for (int p0 = beg; p0 < end; p0 += kTok) {
    const int ntok = min(kTok, end - p0);
    const float* xr[kTok];
    int pid[kTok];
#pragma unroll
    for (int j = 0; j < kTok; ++j) {
      pid[j] = j < ntok ? sorted_pairs[p0 + j] : 0;
      xr[j] = x + (size_t)(pid[j] / x_div) * K;
    }
    float a[kTok] = {0.f, 0.f, 0.f, 0.f}, b[kTok] = {0.f, 0.f, 0.f, 0.f};
    if (U1 > 0 && vec_ok && ntok == 1) {  // decode: one token per expert
      dot_rows<WT, GATE, (U1 > 0 ? U1 : 1), 1>(ra, rb, xr, 1, K, lane, a, b);
    } else if (vec_ok) {
      dot_rows<WT, GATE>(ra, rb, xr, ntok, K, lane, a, b);
    } else {  // unaligned K: scalar loads
      for (int c = lane; c < K; c += 32) {
        const float va = wf(ra[c]), vb = GATE ? wf(rb[c]) : 0.f;
#pragma unroll
        for (int j = 0; j < kTok; ++j)
          if (j < ntok) { a[j] += va * xr[j][c]; if (GATE) b[j] += vb * xr[j][c]; }
      }
    }
#pragma unroll
    for (int j = 0; j < kTok; ++j) {
      const float sa = warp_sum(a[j]);
      const float sb = GATE ? warp_sum(b[j]) : 0.f;
      if (lane == 0 && j < ntok)
        out[(size_t)pid[j] * N + row] = GATE ? sa / (1.f + expf(-sa)) * sb : sa;
    }
  }
}

// grid (ceil(N / 256), T), one output element per thread: a decode step's single row is spread
// over 24 CTAs (one CTA looping over the row took 22 us at N = 6144: 24 serial load latencies).
__global__ void combine_kernel(const float* __restrict__ y, const float* __restrict__ w, int k, int N, float* out) {
  const int64_t t = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= N) return;
  float s = 0.f;
  for (int q = 0; q < k; ++q) s += w[t * k + q] * y[(t * k + q) * (int64_t)N + j];
  out[t * N + j] = s;
}

// grid P (pairs in expert order), block 256: xs[i] = x[sorted_pairs[i] / k].
__global__ void gather_rows_kernel(const float* __restrict__ x, const int32_t* __restrict__ sorted_pairs, int k, int H,
                                   float* __restrict__ xs) {
  const int64_t i = blockIdx.x;
  const float* src = x + (int64_t)(sorted_pairs[i] / k) * H;
  float* dst = xs + i * H;
  for (int j = threadIdx.x; j < H; j += blockDim.x) dst[j] = src[j];
}

__global__ void invert_kernel(const int32_t* __restrict__ sorted_pairs, int64_t P, int32_t* __restrict__ inv) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < P; i += (int64_t)gridDim.x * blockDim.x)
    inv[sorted_pairs[i]] = (int32_t)i;
}

// grid T, block 256: out[t] = sum_q w[t, q] * ys[inv[t*k + q]].
__global__ void combine_sorted_kernel(const float* __restrict__ ys, const int32_t* __restrict__ inv,
                                      const float* __restrict__ w, int k, int N, float* out) {
  const int64_t t = blockIdx.x;
  for (int j = threadIdx.x; j < N; j += blockDim.x) {
    float s = 0.f;
    for (int q = 0; q < k; ++q) s += w[t * k + q] * ys[(int64_t)inv[t * k + q] * N + j];
    out[t * N + j] = s;
  }
}

void check_moe(int E, int k) {
  if (E <= 0 || E > kMaxExperts || k <= 0 || k > 8 || k > E) {
    std::fprintf(stderr, "moe: unsupported experts E=%d top_k=%d (E <= %d, k <= 8)\n", E, k, kMaxExperts);
    std::abort();
  }
}

constexpr int64_t kSingleTokenPairs = 16;

template <bool GATE>
void launch_moe_gemv(const float* x, int x_div, const MoeExperts& wa, const MoeExperts& wb, WDType wt, int E,
                     const int32_t* sorted_offsets, const int32_t* active, const int32_t* sorted_pairs,
                     int64_t max_pairs, float* out, int N, int K, cudaStream_t stream) {
  const dim3 grid((N + kWarps - 1) / kWarps, (unsigned)std::min<int64_t>(E, max_pairs));
  // Up to kSingleTokenPairs pairs (decode batches up to 8 tokens) most experts hold one token:
  // the instance with a branch-free one-row loop, 8 steps unrolled, is 13% faster at T = 1 and 6%
  // at T = 8 (H200); with more tokens per expert its extra registers cost occupancy (T = 32: 6%
  // slower), so larger batches take the generic instance.
  if (max_pairs <= kSingleTokenPairs) {
    M1_WDTYPE_SWITCH(wt, (moe_gemv_kernel<WT, GATE, 8><<<grid, 32 * kWarps, 0, stream>>>(
                             x, x_div, wa, wb, sorted_offsets, active, sorted_pairs, out, N, K, K % 8 == 0)));
  } else {
    M1_WDTYPE_SWITCH(wt, (moe_gemv_kernel<WT, GATE, 0><<<grid, 32 * kWarps, 0, stream>>>(
                             x, x_div, wa, wb, sorted_offsets, active, sorted_pairs, out, N, K, K % 8 == 0)));
  }
  M1_CUDA_CHECK_LAUNCH();
}

}  // namespace

void moe_route(const float* logits, int64_t T, int E, int k, float* topk_w, int32_t* topk_ids, int32_t* offsets,
               int32_t* active, int32_t* sorted_pairs, cudaStream_t stream) {
  check_moe(E, k);
  if (T <= 0) return;
  if (T <= kRouteOneBlock) {
    route_small_kernel<<<1, 1024, 0, stream>>>(logits, (int)T, E, k, topk_w, topk_ids, offsets, active, sorted_pairs);
    M1_CUDA_CHECK_LAUNCH();
    return;
  }
  route_topk_kernel<<<(unsigned)((T + 7) / 8), 256, 0, stream>>>(logits, T, E, k, topk_w, topk_ids);
  M1_CUDA_CHECK_LAUNCH();
  route_group_kernel<<<1, 1024, 0, stream>>>(topk_ids, T * k, E, offsets, active, sorted_pairs);
  M1_CUDA_CHECK_LAUNCH();
}

void moe_experts_gate_up(const float* x, int k, const MoeExperts& w1, const MoeExperts& w3, WDType wt, int E,
                         const int32_t* offsets, const int32_t* active, const int32_t* sorted_pairs, int64_t max_pairs,
                         float* h, int I, int K, cudaStream_t stream) {
  if (max_pairs <= 0) return;
  launch_moe_gemv<true>(x, k, w1, w3, wt, E, offsets, active, sorted_pairs, max_pairs, h, I, K, stream);
}

void moe_experts_down(const float* h, const MoeExperts& w2, WDType wt, int E, const int32_t* offsets,
                      const int32_t* active, const int32_t* sorted_pairs, int64_t max_pairs, float* y, int N, int I,
                      cudaStream_t stream) {
  if (max_pairs <= 0) return;
  launch_moe_gemv<false>(h, 1, w2, w2, wt, E, offsets, active, sorted_pairs, max_pairs, y, N, I, stream);
}

void moe_combine(const float* y, const float* topk_w, int64_t T, int k, int N, float* out, cudaStream_t stream) {
  if (T <= 0) return;
  for (int64_t t0 = 0; t0 < T; t0 += 65535) {  // grid.y limit
    const int64_t n = std::min<int64_t>(65535, T - t0);
    combine_kernel<<<dim3((unsigned)((N + 255) / 256), (unsigned)n), 256, 0, stream>>>(y + t0 * k * N, topk_w + t0 * k,
                                                                                      k, N, out + t0 * N);
    M1_CUDA_CHECK_LAUNCH();
  }
}

void moe_gather_rows(const float* x, const int32_t* sorted_pairs, int k, int64_t P, int H, float* xs,
                     cudaStream_t stream) {
  if (P <= 0) return;
  gather_rows_kernel<<<(unsigned)P, 256, 0, stream>>>(x, sorted_pairs, k, H, xs);
  M1_CUDA_CHECK_LAUNCH();
}

void moe_combine_sorted(const float* ys, const int32_t* sorted_pairs, const float* topk_w, int64_t T, int k, int N,
                        float* out, int32_t* inv_scratch, cudaStream_t stream) {
  if (T <= 0) return;
  const int64_t P = T * k;
  invert_kernel<<<(unsigned)std::min<int64_t>((P + 255) / 256, 1024), 256, 0, stream>>>(sorted_pairs, P, inv_scratch);
  M1_CUDA_CHECK_LAUNCH();
  combine_sorted_kernel<<<(unsigned)T, 256, 0, stream>>>(ys, inv_scratch, topk_w, k, N, out);
  M1_CUDA_CHECK_LAUNCH();
}

}  // namespace m1::cuda
