// Flash-decoding over a paged KV cache. Decisions: a CTA serves all G = Hq/Hkv query heads of
// one kv head, so each K/V row is read from memory once per query (GQA reuse); the visible
// tokens are split over CTAs so a single long sequence fills the GPU; partial (m, l, o) go to
// fp32 scratch and a small kernel merges them. K rows are read from shared memory with 16-byte
// loads and a 16-byte row pad (conflict-free per quarter warp).
#include <algorithm>
#include <cmath>

#include "engine/cuda/attention.h"

namespace m1::cuda {
namespace {

constexpr int kMaxG = 16;
// Threads per CTA: 256 for head_dim >= 64, so a 64K-token decode (2 CTAs per SM at ~250 registers)
// has twice the warps in flight and each thread half the heads of the P.V product; 128 below
// (a head_dim-16 fp32 tile has only 128 16-byte chunks).
template <int D> constexpr int kThreadsFor = D >= 64 ? 256 : 128;
template <typename T> struct TileOf { static constexpr int v = 64; };
template <> struct TileOf<float> { static constexpr int v = 32; };  // fp32 tiles: 2 x 33 KB of smem

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(bf16* p, float x) { *p = __float2bfloat16(x); }
// 16-byte vector type of T
template <typename T> struct Vec16 { using type = uint4; };
template <> struct Vec16<float> { using type = float4; };

struct Split {
  int nsplit, chunk;
};
Split choose_split(int NQ, int hkv, int max_len) {
  // Enough CTAs for ~4 per SM of an H100/H200, each split at least one 64-token tile. (A 256-token
  // minimum left a 1K-context decode step with 32 CTAs of 4 serial tiles each: 44 us, latency
  // bound; at >= 16K contexts the CTA target decides and the splits are >= 256 tokens anyway.)
  constexpr int kTile = 64, kMinChunk = 64, kTargetCtas = 528;
  const int max_splits = std::max(1, (max_len + kMinChunk - 1) / kMinChunk);
  const int want = std::max(1, (kTargetCtas + NQ * hkv - 1) / (NQ * hkv));
  const int nsplit = std::min(want, max_splits);
  int chunk = (max_len + nsplit - 1) / nsplit;
  chunk = (chunk + kTile - 1) / kTile * kTile;
  return {(max_len + chunk - 1) / chunk, chunk};
}

// Row t of k and v (row stride ld) into position p of sequence seq's pages; one CTA per row.
template <typename T>
__device__ __forceinline__ void write_kv_row(const T* __restrict__ k, const T* __restrict__ v, int ld, int seq, int t,
                                             int64_t p, const PagedKV<T>& kv) {
  T* page = kv.pages[(size_t)seq * kv.max_pages + p / kv.page_size];
  const size_t plane = (size_t)kv.page_size * kv.hkv * kv.d;
  T* dst = page + (size_t)(p % kv.page_size) * kv.hkv * kv.d;
  for (int i = threadIdx.x; i < kv.hkv * kv.d; i += blockDim.x) {
    dst[i] = k[(size_t)t * ld + i];
    dst[plane + i] = v[(size_t)t * ld + i];
  }
}

template <typename T>
__global__ void kv_append_kernel(const T* __restrict__ k, const T* __restrict__ v, int ld, int seq, int start,
                                 PagedKV<T> kv) {
  write_kv_row(k, v, ld, seq, blockIdx.x, start + (int64_t)blockIdx.x, kv);
}

// As kv_append_kernel, with each row's position read from the device (graph-replayable).
template <typename T>
__global__ void kv_append_at_kernel(const T* __restrict__ k, const T* __restrict__ v, int ld, int seq,
                                    const int64_t* __restrict__ pos, PagedKV<T> kv) {
  write_kv_row(k, v, ld, seq, blockIdx.x, pos[blockIdx.x], kv);
}

// grid (nsplit, Hkv, NQ), block kThreadsFor<D>. Workspace: o [NQ, Hq, nsplit, D], ml [NQ, Hq, nsplit, 2].
template <int D, typename T>
__global__ void __launch_bounds__(kThreadsFor<D>) attention_split_kernel(const T* __restrict__ q, int q_ld,
                                                                   const int* __restrict__ q_seq,
                                                                   const int* __restrict__ q_len, int Hq,
                                                                   PagedKV<T> kv, float scale, int chunk,
                                                                   float* __restrict__ ws_o,
                                                                   float* __restrict__ ws_ml) {
  constexpr int kThreads = kThreadsFor<D>;
  constexpr int kTile = TileOf<T>::v;
  constexpr int kPer = 16 / sizeof(T);  // elements per 16-byte vector
  constexpr int kLd = D + kPer;         // one vector of pad per row
  constexpr int kGStep = kThreads / D;  // heads handled in parallel in the PV product
  using V16 = typename Vec16<T>::type;
  __shared__ __align__(16) T Ks[kTile * kLd];
  __shared__ __align__(16) T Vs[kTile * kLd];
  __shared__ float qs[kMaxG][D];
  __shared__ float ps[kMaxG][kTile];  // scores, then probabilities
  __shared__ float mrun[kMaxG], lrun[kMaxG], corr[kMaxG];

  const int split = blockIdx.x, hk = blockIdx.y, n = blockIdx.z, nsplit = gridDim.x;
  const int G = Hq / kv.hkv, t = threadIdx.x, warp = t >> 5, lane = t & 31;
  const int seq = q_seq[n], len = q_len[n];
  const int beg = split * chunk, end = min(len, beg + chunk);

  for (int e = t; e < G * D; e += kThreads) {
    const int g = e / D, d = e % D;
    qs[g][d] = to_f(q[(size_t)n * q_ld + (size_t)(hk * G + g) * D + d]) * scale;
  }
  if (t < G) { mrun[t] = -INFINITY; lrun[t] = 0.f; }
  float o[kMaxG / kGStep > 0 ? (kMaxG + kGStep - 1) / kGStep : 1];
  constexpr int kOPer = (kMaxG + kGStep - 1) / kGStep;
#pragma unroll
  for (int k = 0; k < kOPer; ++k) o[k] = 0.f;
  const int od = t % D, og = t / D;

  // K/V tiles go global -> registers (all loads of a tile issued together; the next tile's
  // loads fly while this tile computes) -> shared memory.
  constexpr int kVec = D / kPer;
  constexpr int kLoads = kTile * kVec / kThreads;
  static_assert(kTile * kVec % kThreads == 0, "tile chunks split evenly");
  const size_t plane = (size_t)kv.page_size * kv.hkv * D;
  V16 kr[kLoads], vr[kLoads];
  auto load_tile = [&](int t0) {
    const int mt = min(kTile, end - t0);
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = t + kThreads * i, r = e / kVec, c = (e % kVec) * kPer;
      kr[i] = V16{};
      vr[i] = V16{};
      if (r < mt) {
        const int p = t0 + r;
        const T* page = kv.pages[(size_t)seq * kv.max_pages + p / kv.page_size];
        const size_t off = ((size_t)(p % kv.page_size) * kv.hkv + hk) * D + c;
        kr[i] = *reinterpret_cast<const V16*>(page + off);
        vr[i] = *reinterpret_cast<const V16*>(page + plane + off);
      }
    }
  };
  if (beg < end) load_tile(beg);

  for (int t0 = beg; t0 < end; t0 += kTile) {
    const int m = min(kTile, end - t0);
    __syncthreads();  // the previous tile's readers are done
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = t + kThreads * i, r = e / kVec, c = (e % kVec) * kPer;
      *reinterpret_cast<V16*>(Ks + r * kLd + c) = kr[i];
      *reinterpret_cast<V16*>(Vs + r * kLd + c) = vr[i];
    }
    if (t0 + kTile < end) load_tile(t0 + kTile);
    __syncthreads();
    // scores: thread -> token t % 64, heads g = t/64, t/64 + 2, ...
    {
      const int tok = t % kTile;
      for (int g = t / kTile; g < G; g += kThreads / kTile) {
        float s = 0.f;
#pragma unroll 8  // not all D / kPer row loads at once: registers for more warps per SM
        for (int c = 0; c < D; c += kPer) {
          const V16 kk = *reinterpret_cast<const V16*>(Ks + tok * kLd + c);
          const T* kp = reinterpret_cast<const T*>(&kk);
#pragma unroll
          for (int i = 0; i < kPer; ++i) s += qs[g][c + i] * to_f(kp[i]);
        }
        ps[g][tok] = tok < m ? s : -INFINITY;
      }
    }
    __syncthreads();
    // online softmax per head: warp w handles heads w, w+4, ...
    for (int g = warp; g < G; g += kThreads / 32) {
      constexpr int kPerLane = kTile / 32;
      float sv[kPerLane];
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        sv[i] = ps[g][lane + 32 * i];
        mx = fmaxf(mx, sv[i]);
      }
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float mnew = fmaxf(mrun[g], mx);  // finite: m >= 1 token in this tile
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        sv[i] = __expf(sv[i] - mnew);
        sum += sv[i];
      }
      for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) ps[g][lane + 32 * i] = sv[i];
      __syncwarp();
      if (lane == 0) {
        const float c = __expf(mrun[g] - mnew);  // exp(-inf) = 0 on the first tile
        corr[g] = c;
        lrun[g] = lrun[g] * c + sum;
        mrun[g] = mnew;
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kOPer; ++k) {
      const int g = og + k * kGStep;
      if (g < G) {
        float acc = o[k] * corr[g];
        for (int r = 0; r < m; ++r) acc += ps[g][r] * to_f(Vs[r * kLd + od]);
        o[k] = acc;
      }
    }
  }
  __syncthreads();
  const size_t base = ((size_t)n * Hq + hk * G) * nsplit + split;  // index of (n, head hk*G, split)
#pragma unroll
  for (int k = 0; k < kOPer; ++k) {
    const int g = og + k * kGStep;
    if (g < G) ws_o[(base + (size_t)g * nsplit) * D + od] = o[k];
  }
  if (t < G) {
    ws_ml[(base + (size_t)t * nsplit) * 2 + 0] = beg < end ? mrun[t] : -INFINITY;
    ws_ml[(base + (size_t)t * nsplit) * 2 + 1] = beg < end ? lrun[t] : 0.f;
  }
}

// grid (Hq, NQ), block D: merge the splits of one (query, head).
template <typename T>
__global__ void attention_merge_kernel(const float* __restrict__ ws_o, const float* __restrict__ ws_ml, int Hq,
                                       int nsplit, int D, T* __restrict__ out) {
  const int h = blockIdx.x, n = blockIdx.y, d = threadIdx.x;
  const size_t base = ((size_t)n * Hq + h) * nsplit;
  float M = -INFINITY;
  for (int s = 0; s < nsplit; ++s) M = fmaxf(M, ws_ml[(base + s) * 2]);
  float num = 0.f, den = 0.f;
  for (int s = 0; s < nsplit; ++s) {
    const float ms = ws_ml[(base + s) * 2];
    if (ms == -INFINITY) continue;
    const float w = __expf(ms - M);
    num += w * ws_o[(base + s) * D + d];
    den += w * ws_ml[(base + s) * 2 + 1];
  }
  store_f(out + ((size_t)n * Hq + h) * D + d, den > 0.f ? num / den : 0.f);
}

}  // namespace

template <typename T>
void kv_append(const T* k, const T* v, int ld, int T_rows, int seq, int start, const PagedKV<T>& kv,
               cudaStream_t stream) {
  if (T_rows <= 0) return;
  kv_append_kernel<T><<<T_rows, 256, 0, stream>>>(k, v, ld, seq, start, kv);
  M1_CUDA_CHECK_LAUNCH();
}

template <typename T>
void kv_append_at(const T* k, const T* v, int ld, int T_rows, int seq, const int64_t* positions, const PagedKV<T>& kv,
                  cudaStream_t stream) {
  if (T_rows <= 0) return;
  kv_append_at_kernel<T><<<T_rows, 256, 0, stream>>>(k, v, ld, seq, positions, kv);
  M1_CUDA_CHECK_LAUNCH();
}

size_t attention_workspace_bytes(int NQ, int Hq, int D, int max_len) {
  const Split sp = choose_split(NQ, 1, std::max(1, max_len));  // hkv = 1: the largest split count
  return sizeof(float) * (size_t)NQ * Hq * sp.nsplit * (D + 2);
}

template <typename T>
void attention_paged(const T* q, int q_ld, const int* q_seq, const int* q_len, int NQ, int Hq, int max_len,
                     const PagedKV<T>& kv, float scale, T* out, void* workspace, cudaStream_t stream) {
  if (NQ <= 0) return;
  const int G = kv.hkv > 0 ? Hq / kv.hkv : 0;
  if (kv.hkv <= 0 || Hq % kv.hkv != 0 || G > kMaxG || max_len <= 0) {
    std::fprintf(stderr, "attention_paged: unsupported heads Hq=%d Hkv=%d (need Hq %% Hkv == 0, Hq/Hkv <= %d)\n",
                 Hq, kv.hkv, kMaxG);
    std::abort();
  }
  const Split sp = choose_split(NQ, kv.hkv, max_len);
  float* ws_o = static_cast<float*>(workspace);
  float* ws_ml = ws_o + (size_t)NQ * Hq * sp.nsplit * kv.d;
  dim3 grid(sp.nsplit, kv.hkv, NQ);
  switch (kv.d) {
#define M1_CASE(DD)                                                                                        \
  case DD:                                                                                                 \
    attention_split_kernel<DD, T><<<grid, kThreadsFor<DD>, 0, stream>>>(q, q_ld, q_seq, q_len, Hq, kv, scale, sp.chunk, \
                                                                  ws_o, ws_ml);                            \
    break;
    M1_CASE(16) M1_CASE(32) M1_CASE(64) M1_CASE(128)
#undef M1_CASE
    default:
      std::fprintf(stderr, "attention_paged: head_dim %d unsupported (16, 32, 64, 128)\n", kv.d);
      std::abort();
  }
  M1_CUDA_CHECK_LAUNCH();
  attention_merge_kernel<T><<<dim3(Hq, NQ), kv.d, 0, stream>>>(ws_o, ws_ml, Hq, sp.nsplit, kv.d, out);
  M1_CUDA_CHECK_LAUNCH();
}

#define M1_INST(T)                                                                                        \
  template void kv_append<T>(const T*, const T*, int, int, int, int, const PagedKV<T>&, cudaStream_t);     \
  template void kv_append_at<T>(const T*, const T*, int, int, int, const int64_t*, const PagedKV<T>&,       \
                                cudaStream_t);                                                              \
  template void attention_paged<T>(const T*, int, const int*, const int*, int, int, int, const PagedKV<T>&, \
                                   float, T*, void*, cudaStream_t);
M1_INST(float)
M1_INST(bf16)
#undef M1_INST

}  // namespace m1::cuda
