// Lightning-attention chunked prefill. Math (m1-model.md §3.1), per block of m <= BK tokens:
//   O = (Q K^T (.) Dmask) V + (Q (.) qdecay) S;   S <- lambda^m S + K^T (kdecay (.) V)
// Decisions:
// - One CTA per (sequence, head, W-column slice of V/S/O) walks the blocks in order: the state
//   slice never leaves the chip (fp32, in wmma accumulator fragments held in registers), so no
//   per-block states are written to memory. QK^T is recomputed by the D/W slices of one head
//   (they read the same Q, K from L2).
// - Tensor cores through wmma (bf16 operands, fp32 accumulation). Q S uses a bf16 copy of S, as
//   the reference's decode does; the fp32 state itself only ever accumulates in fp32.
// - qdecay is folded into a bf16 copy of Q, kdecay into a bf16 copy of V (row scalings).
#include <mma.h>

#include "engine/cuda/lightning.h"

namespace m1::cuda {
namespace {

using namespace nvcuda;

__device__ __forceinline__ float silu_f(float x) { return __fdividef(x, 1.0f + __expf(-x)); }
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(bf16* p, float x) { *p = __float2bfloat16(x); }

__device__ __forceinline__ void store8(bf16* p, const float* x) {
  __align__(16) bf16 b[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) b[i] = __float2bfloat16(x[i]);
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(b);
}
__device__ __forceinline__ void store8(float* p, const float* x) {
  *reinterpret_cast<float4*>(p) = make_float4(x[0], x[1], x[2], x[3]);
  *reinterpret_cast<float4*>(p + 4) = make_float4(x[4], x[5], x[6], x[7]);
}

// 8 consecutive activations as loaded (16 bytes of bf16, 32 of fp32), held in registers while
// the previous block computes (the loads of block n+1 are in flight during block n's math).
template <typename T> struct Raw8;
template <> struct Raw8<bf16> { uint4 u; };
template <> struct Raw8<float> { float4 a, b; };
__device__ __forceinline__ void ld_raw(Raw8<bf16>& r, const bf16* p) { r.u = *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ void ld_raw(Raw8<float>& r, const float* p) {
  r.a = *reinterpret_cast<const float4*>(p);
  r.b = *reinterpret_cast<const float4*>(p + 4);
}
__device__ __forceinline__ void zero_raw(Raw8<bf16>& r) { r.u = make_uint4(0, 0, 0, 0); }
__device__ __forceinline__ void zero_raw(Raw8<float>& r) { r.a = r.b = make_float4(0.f, 0.f, 0.f, 0.f); }
__device__ __forceinline__ void unpack(const Raw8<bf16>& r, float* x) {
  const bf16* b = reinterpret_cast<const bf16*>(&r.u);
#pragma unroll
  for (int i = 0; i < 8; ++i) x[i] = __bfloat162float(b[i]);
}
__device__ __forceinline__ void unpack(const Raw8<float>& r, float* x) {
  x[0] = r.a.x; x[1] = r.a.y; x[2] = r.a.z; x[3] = r.a.w; x[4] = r.b.x; x[5] = r.b.y; x[6] = r.b.z; x[7] = r.b.w;
}

constexpr int kD = 128;   // head dim of the tensor-core path
constexpr int kLdQ = kD + 8;

template <int BK, int W>
struct PrefillSmem {
  static constexpr int kLdV = W + 8, kLdA = BK + 8;
  static constexpr int kStageFloats =
      (BK * (BK + 4) > kD * (W + 4) ? BK * (BK + 4) : kD * (W + 4)) > BK * (W + 4)
          ? (BK * (BK + 4) > kD * (W + 4) ? BK * (BK + 4) : kD * (W + 4))
          : BK * (W + 4);
  static constexpr int kPowFloats = (BK + 1 + 3) / 4 * 4;  // lambda^0 .. lambda^BK
  static constexpr size_t kBytes = sizeof(float) * (kStageFloats + kPowFloats) +
                                   sizeof(bf16) * (3 * BK * kLdQ + 2 * BK * kLdV + BK * kLdA + kD * kLdV);
};

// grid (D/W, H, nseq), block NW warps (NW = 8 asks for 2 CTAs per SM: <= 128 registers).
template <int BK, int W, int NW, typename T>
__global__ void __launch_bounds__(NW * 32, 256 / (NW * 32) > 1 ? 1 : 2) lightning_prefill_wmma(const T* __restrict__ qkv,
                                                              const int* __restrict__ cu_seqlens, StatePtrs states,
                                                              HeadSlopes slopes, T* __restrict__ out, int H,
                                                              bool silu) {
  using L = PrefillSmem<BK, W>;
  constexpr int kLdV = L::kLdV, kLdA = L::kLdA;
  constexpr int kSTiles = (kD / 16) * (W / 16);  // state tiles
  constexpr int kThreads = NW * 32;
  constexpr int kSPerWarp = kSTiles / NW;
  static_assert(kSTiles % NW == 0, "state tiles split evenly over the warps");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  float* stage = reinterpret_cast<float*>(smem_raw);
  float* dpow = stage + L::kStageFloats;  // dpow[k] = lambda^k (fp32, as exp(-slope k))
  bf16* Qs = reinterpret_cast<bf16*>(dpow + L::kPowFloats);
  bf16* Qd = Qs + BK * kLdQ;
  bf16* Ks = Qd + BK * kLdQ;
  bf16* Vs = Ks + BK * kLdQ;
  bf16* Vd = Vs + BK * kLdV;
  bf16* Ab = Vd + BK * kLdV;
  bf16* Sb = Ab + BK * kLdA;

  const int c0 = blockIdx.x * W, h = blockIdx.y, seq = blockIdx.z;
  const int t = threadIdx.x, warp = t >> 5;
  const int row0 = cu_seqlens[seq], len = cu_seqlens[seq + 1] - row0;
  const float slope = slopes.v[h];
  float* Sg = states.p[seq] + (size_t)h * kD * kD + c0;  // [kD rows][W cols], ld kD

  // State slice: fp32 fragments (registers) + bf16 copy in shared memory.
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> sfrag[kSPerWarp];
#pragma unroll
  for (int i = 0; i < kSPerWarp; ++i) {
    const int tile = warp * kSPerWarp + i, ti = tile / (W / 16), tj = tile % (W / 16);
    wmma::load_matrix_sync(sfrag[i], Sg + (size_t)ti * 16 * kD + tj * 16, kD, wmma::mem_row_major);
  }
  for (int e = t; e < kD * W; e += kThreads) {
    const int r = e / W, c = e % W;
    Sb[r * kLdV + c] = __float2bfloat16(Sg[(size_t)r * kD + c]);
  }
  for (int k = t; k <= BK; k += kThreads) dpow[k] = __expf(-slope * (float)k);
  __syncthreads();

  // Per thread: kNQ 8-wide chunks of Q and of K, kNV of the V slice (chunk e = t + 128 i).
  constexpr int kNQ = BK * (kD / 8) / kThreads, kNV = BK * (W / 8) / kThreads;
  static_assert(BK * (kD / 8) % kThreads == 0 && BK * (W / 8) % kThreads == 0, "chunks split evenly");
  Raw8<T> rq[kNQ], rk[kNQ], rv[kNV];
  auto load_block = [&](int b0) {
    const int mb = min(BK, len - b0);
#pragma unroll
    for (int i = 0; i < kNQ; ++i) {
      const int e = t + kThreads * i, r = e / (kD / 8), c = (e % (kD / 8)) * 8;
      if (r < mb) {
        const T* base = qkv + ((size_t)(row0 + b0 + r) * H + h) * 3 * kD;
        ld_raw(rq[i], base + c);
        ld_raw(rk[i], base + kD + c);
      } else {
        zero_raw(rq[i]);
        zero_raw(rk[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < kNV; ++i) {
      const int e = t + kThreads * i, r = e / (W / 8), c = (e % (W / 8)) * 8;
      if (r < mb)
        ld_raw(rv[i], qkv + ((size_t)(row0 + b0 + r) * H + h) * 3 * kD + 2 * kD + c0 + c);
      else
        zero_raw(rv[i]);
    }
  };
  if (len > 0) load_block(0);

  for (int blk0 = 0; blk0 < len; blk0 += BK) {
    const int m = min(BK, len - blk0);
    // 1. Registers -> shared memory (SiLU, decays, bf16); rows past m are zeros.
#pragma unroll
    for (int i = 0; i < kNQ; ++i) {
      const int e = t + kThreads * i, r = e / (kD / 8), c = (e % (kD / 8)) * 8;
      float q[8], k[8];
      unpack(rq[i], q);
      unpack(rk[i], k);
      if (silu && r < m) {
#pragma unroll
        for (int j = 0; j < 8; ++j) { q[j] = silu_f(q[j]); k[j] = silu_f(k[j]); }
      }
      const float qdec = dpow[r + 1];
      __align__(16) bf16 qs8[8], qd8[8], ks8[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        qs8[j] = __float2bfloat16(q[j]);
        qd8[j] = __float2bfloat16(q[j] * qdec);
        ks8[j] = __float2bfloat16(k[j]);
      }
      *reinterpret_cast<uint4*>(Qs + r * kLdQ + c) = *reinterpret_cast<const uint4*>(qs8);
      *reinterpret_cast<uint4*>(Qd + r * kLdQ + c) = *reinterpret_cast<const uint4*>(qd8);
      *reinterpret_cast<uint4*>(Ks + r * kLdQ + c) = *reinterpret_cast<const uint4*>(ks8);
    }
#pragma unroll
    for (int i = 0; i < kNV; ++i) {
      const int e = t + kThreads * i, r = e / (W / 8), c = (e % (W / 8)) * 8;
      float v[8];
      unpack(rv[i], v);
      if (silu && r < m) {
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = silu_f(v[j]);
      }
      const float kdec = r < m ? dpow[m - 1 - r] : 0.f;
      __align__(16) bf16 vs8[8], vd8[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        vs8[j] = __float2bfloat16(v[j]);
        vd8[j] = __float2bfloat16(v[j] * kdec);
      }
      *reinterpret_cast<uint4*>(Vs + r * kLdV + c) = *reinterpret_cast<const uint4*>(vs8);
      *reinterpret_cast<uint4*>(Vd + r * kLdV + c) = *reinterpret_cast<const uint4*>(vd8);
    }
    // Next block's loads fly while this block computes.
    if (blk0 + BK < len) load_block(blk0 + BK);
    __syncthreads();

    // 2. A = Q K^T on the lower-triangular tiles only.
    constexpr int NT = BK / 16;
    for (int tile = warp; tile < NT * NT; tile += NW) {
      const int ti = tile / NT, tj = tile % NT;
      if (tj > ti) continue;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> bt;
        wmma::load_matrix_sync(a, Qs + ti * 16 * kLdQ + kk * 16, kLdQ);
        wmma::load_matrix_sync(bt, Ks + tj * 16 * kLdQ + kk * 16, kLdQ);
        wmma::mma_sync(acc, a, bt, acc);
      }
      wmma::store_matrix_sync(stage + ti * 16 * (BK + 4) + tj * 16, acc, BK + 4, wmma::mem_row_major);
    }
    __syncthreads();
    // 3. Decay mask: Ab[i][j] = bf16(bf16(A[i][j]) * lambda^(i-j)) for j <= i, else 0.
    for (int e = t; e < BK * BK / 4; e += kThreads) {  // 4 columns per step: float4 in, 4 bf16 out
      const int i = e / (BK / 4), j0 = (e % (BK / 4)) * 4;
      const float4 a4 = *reinterpret_cast<const float4*>(stage + i * (BK + 4) + j0);
      const float av[4] = {a4.x, a4.y, a4.z, a4.w};
      __align__(8) bf16 o4[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int j = j0 + u;
        o4[u] = __float2bfloat16(j <= i ? __bfloat162float(__float2bfloat16(av[u])) * dpow[i - j] : 0.f);
      }
      *reinterpret_cast<uint2*>(Ab + i * kLdA + j0) = *reinterpret_cast<const uint2*>(o4);
    }
    __syncthreads();

    // 4. O = Qd Sb + Ab V (O tiles: NT x W/16).
    for (int tile = warp; tile < NT * (W / 16); tile += NW) {
      const int ti = tile / (W / 16), tj = tile % (W / 16);
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bm;
        wmma::load_matrix_sync(a, Qd + ti * 16 * kLdQ + kk * 16, kLdQ);
        wmma::load_matrix_sync(bm, Sb + kk * 16 * kLdV + tj * 16, kLdV);
        wmma::mma_sync(acc, a, bm, acc);
      }
      for (int kk = 0; kk <= ti; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bm;
        wmma::load_matrix_sync(a, Ab + ti * 16 * kLdA + kk * 16, kLdA);
        wmma::load_matrix_sync(bm, Vs + kk * 16 * kLdV + tj * 16, kLdV);
        wmma::mma_sync(acc, a, bm, acc);
      }
      wmma::store_matrix_sync(stage + ti * 16 * (W + 4) + tj * 16, acc, W + 4, wmma::mem_row_major);
    }
    __syncthreads();
    // Write O rows < m; 5. S <- lambda^m S + K^T Vd (fragments in registers).
    for (int e = t; e < m * (W / 8); e += kThreads) {
      const int r = e / (W / 8), c = (e % (W / 8)) * 8;
      float o8[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) o8[i] = stage[r * (W + 4) + c + i];
      store8(out + ((size_t)(row0 + blk0 + r) * H + h) * kD + c0 + c, o8);
    }
    const float decay_m = dpow[m];
#pragma unroll
    for (int i = 0; i < kSPerWarp; ++i) {
      const int tile = warp * kSPerWarp + i, ti = tile / (W / 16), tj = tile % (W / 16);
#pragma unroll
      for (int x = 0; x < sfrag[i].num_elements; ++x) sfrag[i].x[x] *= decay_m;
#pragma unroll
      for (int kk = 0; kk < BK / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> a;  // K^T
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bm;
        wmma::load_matrix_sync(a, Ks + kk * 16 * kLdQ + ti * 16, kLdQ);
        wmma::load_matrix_sync(bm, Vd + kk * 16 * kLdV + tj * 16, kLdV);
        wmma::mma_sync(sfrag[i], a, bm, sfrag[i]);
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kSPerWarp; ++i) {
      const int tile = warp * kSPerWarp + i, ti = tile / (W / 16), tj = tile % (W / 16);
      wmma::store_matrix_sync(stage + ti * 16 * (W + 4) + tj * 16, sfrag[i], W + 4, wmma::mem_row_major);
    }
    __syncthreads();
    for (int e = t; e < kD * W / 4; e += kThreads) {
      const int r = e / (W / 4), c = (e % (W / 4)) * 4;
      const float4 s4 = *reinterpret_cast<const float4*>(stage + r * (W + 4) + c);
      __align__(8) bf16 o4[4] = {__float2bfloat16(s4.x), __float2bfloat16(s4.y), __float2bfloat16(s4.z),
                                 __float2bfloat16(s4.w)};
      *reinterpret_cast<uint2*>(Sb + r * kLdV + c) = *reinterpret_cast<const uint2*>(o4);
    }    // The next block's loads touch no buffer read after the last barrier except Sb (read only
    // after the next block's first barrier).
  }
#pragma unroll
  for (int i = 0; i < kSPerWarp; ++i) {
    const int tile = warp * kSPerWarp + i, ti = tile / (W / 16), tj = tile % (W / 16);
    wmma::store_matrix_sync(Sg + (size_t)ti * 16 * kD + tj * 16, sfrag[i], kD, wmma::mem_row_major);
  }
}

// Recurrent fallback, any D <= 128: grid (H, nseq), block D; thread j keeps column j of S in
// registers (compile-time-indexed array) and walks the tokens.
template <typename T>
__global__ void __launch_bounds__(128) lightning_prefill_recurrent(const T* __restrict__ qkv,
                                                                   const int* __restrict__ cu_seqlens,
                                                                   StatePtrs states, HeadSlopes slopes,
                                                                   T* __restrict__ out, int H, int D, bool silu) {
  __shared__ float qk[2][128];
  const int h = blockIdx.x, seq = blockIdx.y, j = threadIdx.x;
  const int row0 = cu_seqlens[seq], len = cu_seqlens[seq + 1] - row0;
  float* S = states.p[seq] + (size_t)h * D * D;
  const float lam = __expf(-slopes.v[h]);
  float s[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) s[i] = i < D ? S[(size_t)i * D + j] : 0.f;
  for (int tok = 0; tok < len; ++tok) {
    const T* base = qkv + ((size_t)(row0 + tok) * H + h) * 3 * D;
    float q = to_f(base[j]), k = to_f(base[D + j]), v = to_f(base[2 * D + j]);
    if (silu) { q = silu_f(q); k = silu_f(k); v = silu_f(v); }
    __syncthreads();  // previous token's readers are done
    qk[0][j] = q;
    qk[1][j] = k;
    __syncthreads();
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < 128; ++i) {
      if (i < D) {
        s[i] = lam * s[i] + qk[1][i] * v;
        acc += qk[0][i] * s[i];
      }
    }
    store_f(out + ((size_t)(row0 + tok) * H + h) * D + j, acc);
  }
#pragma unroll
  for (int i = 0; i < 128; ++i)
    if (i < D) S[(size_t)i * D + j] = s[i];
}

template <int BK, int W, int NW, typename T>
void launch_wmma(const T* qkv, const int* cu_seqlens, int nseq, const StatePtrs& states, const HeadSlopes& slopes,
                 T* out, int H, bool silu, cudaStream_t stream) {
  constexpr size_t bytes = PrefillSmem<BK, W>::kBytes;
  static bool configured = false;  // the attribute is set once per process for each instance
  if (!configured) {
    M1_CUDA_CHECK(cudaFuncSetAttribute(lightning_prefill_wmma<BK, W, NW, T>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    configured = true;
  }
  lightning_prefill_wmma<BK, W, NW, T><<<dim3(kD / W, H, nseq), NW * 32, bytes, stream>>>(qkv, cu_seqlens, states, slopes,
                                                                                 out, H, silu);
  M1_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename T>
void lightning_prefill_variant(int variant, const T* qkv, const int* cu_seqlens, int nseq, const StatePtrs& states,
                               const HeadSlopes& slopes, T* out, int H, int D, bool silu, cudaStream_t stream) {
  if (nseq <= 0) return;
  if (D <= 0 || D > 128 || H <= 0 || H > kMaxHeads || nseq > kMaxSessions) {
    std::fprintf(stderr, "lightning_prefill: unsupported shape nseq=%d H=%d D=%d (D<=128, H<=%d)\n", nseq, H, D,
                 kMaxHeads);
    std::abort();
  }
  if (variant != 0 && D != kD) {
    std::fprintf(stderr, "lightning_prefill: variant %d needs head_dim 128, got %d\n", variant, D);
    std::abort();
  }
  switch (variant) {
    case 0:
      lightning_prefill_recurrent<T><<<dim3(H, nseq), D, 0, stream>>>(qkv, cu_seqlens, states, slopes, out, H, D,
                                                                      silu);
      M1_CUDA_CHECK_LAUNCH();
      break;
    case 1: launch_wmma<64, 32, 4, T>(qkv, cu_seqlens, nseq, states, slopes, out, H, silu, stream); break;
    case 2: launch_wmma<64, 64, 4, T>(qkv, cu_seqlens, nseq, states, slopes, out, H, silu, stream); break;
    case 3: launch_wmma<64, 32, 8, T>(qkv, cu_seqlens, nseq, states, slopes, out, H, silu, stream); break;
    default:
      std::fprintf(stderr, "lightning_prefill: unknown variant %d\n", variant);
      std::abort();
  }
}

template <typename T>
void lightning_prefill(const T* qkv, const int* cu_seqlens, int nseq, const StatePtrs& states,
                       const HeadSlopes& slopes, T* out, int H, int D, bool silu, cudaStream_t stream) {
  lightning_prefill_variant<T>(D == kD ? 1 : 0, qkv, cu_seqlens, nseq, states, slopes, out, H, D, silu, stream);
}

#define M1_INST(T)                                                                                              \
  template void lightning_prefill_variant<T>(int, const T*, const int*, int, const StatePtrs&, const HeadSlopes&, \
                                             T*, int, int, bool, cudaStream_t);                                 \
  template void lightning_prefill<T>(const T*, const int*, int, const StatePtrs&, const HeadSlopes&, T*, int, int,  \
                                     bool, cudaStream_t);
M1_INST(float)
M1_INST(bf16)
#undef M1_INST

}  // namespace m1::cuda
