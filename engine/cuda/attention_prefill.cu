// Causal softmax-attention prefill on tensor cores over the paged fp32 KV cache, flash-attention-2
// style: a CTA holds 64 query rows of KH heads that share one kv head (so each K/V tile is read
// once for them); each warp keeps 16 rows' Q fragments, scores and output accumulators in
// registers (mma.sync m16n8k16, bf16 operands, fp32 accumulation), with the online softmax in
// the exp2 domain (Q pre-scaled by scale * log2 e).
// Decisions: K/V tiles of 64 keys are converted fp32 -> bf16 once into shared memory (rows padded
// by 16 bytes so ldmatrix reads are conflict-free); V is read transposed by ldmatrix.trans, not
// stored transposed. No double buffering yet: the tile load and the math alternate (see
// bench/NOTES.md for what it reaches).
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "engine/cuda/attention.h"

namespace m1::cuda {
namespace {

constexpr int kRows = 64;  // query rows per CTA: 4 warps x 16 per head
constexpr int kKeys = 64;  // keys per tile

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const bf16* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const bf16* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(a));
}

// Loads keys t0 .. t0+63 of kv head hk (zeros past kv_end) from plane `which` (0 K, 1 V) into
// dst [64][D + 8] bf16. Coalesced: a warp reads 32 consecutive 16-byte pieces of key rows.
template <int D, int kThreads>
__device__ __forceinline__ void load_tile(const PagedKV<float>& kv, int hk, int t0, int kv_end, int which, bf16* dst,
                                          int tid) {
  constexpr int kVec = D / 4, kLd = D + 8, kLoads = kKeys * kVec / kThreads;
  static_assert(kKeys * kVec % kThreads == 0, "tile splits evenly over the threads");
  const size_t plane = (size_t)kv.page_size * kv.hkv * D * which;
  float4 v[kLoads];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int e = tid + i * kThreads, r = e / kVec, c = (e % kVec) * 4, key = t0 + r;
    v[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (key < kv_end) {
      const float* page = kv.pages[key / kv.page_size];
      v[i] = *reinterpret_cast<const float4*>(page + plane + ((size_t)(key % kv.page_size) * kv.hkv + hk) * D + c);
    }
  }
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int e = tid + i * kThreads, r = e / kVec, c = (e % kVec) * 4;
    uint2 p;
    p.x = pack_bf16(v[i].x, v[i].y);
    p.y = pack_bf16(v[i].z, v[i].w);
    *reinterpret_cast<uint2*>(dst + r * kLd + c) = p;
  }
}

// grid (ceil(T / 64), Hq / KH), block 128 * KH. Warp w: rows 16 (w % 4) .. +15 of the CTA's 64, head
// blockIdx.y * KH + w / 4.
template <int D, int KH>
__global__ void __launch_bounds__(128 * KH, 1)
    attention_prefill_kernel(const float* __restrict__ q, int q_ld, int T, int Hq, int pos0, PagedKV<float> kv,
                             float scale_log2, float* __restrict__ out) {
  constexpr int kThreads = 128 * KH, kLd = D + 8;
  __shared__ __align__(16) bf16 Ks[kKeys * kLd];
  __shared__ __align__(16) bf16 Vs[kKeys * kLd];

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tg = lane & 3;
  const int row0 = blockIdx.x * kRows, h = blockIdx.y * KH + warp / 4;
  const int hk = (blockIdx.y * KH) / (Hq / kv.hkv);
  const int wr = row0 + (warp % 4) * 16;  // this warp's first row
  const int r0 = wr + g, r1 = r0 + 8;     // this lane's two rows
  const int p0 = pos0 + r0, p1 = pos0 + r1;

  uint32_t qa[D / 16][4];
  {
    const float* q0 = q + (size_t)min(r0, T - 1) * q_ld + (size_t)h * D;
    const float* q1 = q + (size_t)min(r1, T - 1) * q_ld + (size_t)h * D;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int c = kk * 16 + tg * 2;
      const float2 a = *reinterpret_cast<const float2*>(q0 + c), b = *reinterpret_cast<const float2*>(q1 + c);
      const float2 a8 = *reinterpret_cast<const float2*>(q0 + c + 8), b8 = *reinterpret_cast<const float2*>(q1 + c + 8);
      qa[kk][0] = pack_bf16(a.x * scale_log2, a.y * scale_log2);
      qa[kk][1] = pack_bf16(b.x * scale_log2, b.y * scale_log2);
      qa[kk][2] = pack_bf16(a8.x * scale_log2, a8.y * scale_log2);
      qa[kk][3] = pack_bf16(b8.x * scale_log2, b8.y * scale_log2);
    }
  }
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

  const int kv_end = pos0 + min(T, row0 + kRows);            // keys any row of this CTA sees
  const int warp_last = pos0 + min(T - 1, wr + 15);          // largest position among the warp's rows
  for (int t0 = 0; t0 < kv_end; t0 += kKeys) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<D, kThreads>(kv, hk, t0, kv_end, 0, Ks, tid);
    load_tile<D, kThreads>(kv, hk, t0, kv_end, 1, Vs, tid);
    __syncthreads();
    if (t0 > warp_last) continue;  // every key of the tile is after all of this warp's rows

    // S = Q K^T: 16 rows x 64 keys per warp.
    float s[kKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int j = 0; j < kKeys / 8; j += 2) {
        uint32_t b0, b1, c0, c1;
        ldsm_x4(b0, b1, c0, c1, Ks + (8 * j + (lane & 7) + (lane >> 4) * 8) * kLd + 16 * kk + ((lane >> 3) & 1) * 8);
        mma_bf16(s[j], qa[kk], b0, b1);
        mma_bf16(s[j + 1], qa[kk], c0, c1);
      }
    if (t0 + kKeys - 1 > pos0 + wr) {  // causal mask: some key of the tile is after some row
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = t0 + 8 * j + tg * 2 + (e & 1);
          if (key > (e < 2 ? p0 : p1)) s[j][e] = -INFINITY;
        }
    }
    // Online softmax (rows g and g + 8; a row's 64 scores live in the 4 lanes of a quad).
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
      mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    // Finite: tile 0 holds key 0, which every row sees; later tiles keep the running maximum.
    const float c0 = exp2f(m0 - mx0), c1 = exp2f(m1 - mx1);
    m0 = mx0;
    m1 = mx1;
    uint32_t pa[kKeys / 16][4];
    float ls0 = 0.f, ls1 = 0.f;
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      const float e0 = exp2f(s[j][0] - mx0), e1 = exp2f(s[j][1] - mx0);
      const float e2 = exp2f(s[j][2] - mx1), e3 = exp2f(s[j][3] - mx1);
      ls0 += e0 + e1;
      ls1 += e2 + e3;
      pa[j / 2][(j & 1) * 2 + 0] = pack_bf16(e0, e1);
      pa[j / 2][(j & 1) * 2 + 1] = pack_bf16(e2, e3);
    }
    l0 = l0 * c0 + ls0;
    l1 = l1 * c1 + ls1;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      o[i][0] *= c0;
      o[i][1] *= c0;
      o[i][2] *= c1;
      o[i][3] *= c1;
    }
    // O += P V: V [keys][dims] read transposed by ldmatrix.trans as the B operand.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
#pragma unroll
      for (int dn = 0; dn < D / 8; dn += 2) {
        uint32_t b0, b1, c0_, c1_;
        ldsm_x4_trans(b0, b1, c0_, c1_,
                      Vs + (16 * kk + (lane & 7) + ((lane >> 3) & 1) * 8) * kLd + 8 * dn + (lane >> 4) * 8);
        mma_bf16(o[dn], pa[kk], b0, b1);
        mma_bf16(o[dn + 1], pa[kk], c0_, c1_);
      }
  }
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float i0 = 1.f / l0, i1 = 1.f / l1;
#pragma unroll
  for (int i = 0; i < D / 8; ++i) {
    const int c = 8 * i + tg * 2;
    if (r0 < T) *reinterpret_cast<float2*>(out + ((size_t)r0 * Hq + h) * D + c) = make_float2(o[i][0] * i0, o[i][1] * i0);
    if (r1 < T) *reinterpret_cast<float2*>(out + ((size_t)r1 * Hq + h) * D + c) = make_float2(o[i][2] * i1, o[i][3] * i1);
  }
}

template <int D>
void launch(const float* q, int q_ld, int T, int Hq, int pos0, const PagedKV<float>& kv, float sl, float* out,
            cudaStream_t stream) {
  const int G = Hq / kv.hkv;
  const unsigned rows = (unsigned)((T + kRows - 1) / kRows);
  if (G % 2 == 0)
    attention_prefill_kernel<D, 2><<<dim3(rows, Hq / 2), 256, 0, stream>>>(q, q_ld, T, Hq, pos0, kv, sl, out);
  else
    attention_prefill_kernel<D, 1><<<dim3(rows, Hq), 128, 0, stream>>>(q, q_ld, T, Hq, pos0, kv, sl, out);
  M1_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_prefill_tc_supported(int D, int Hq, int Hkv) {
  return (D == 64 || D == 128) && Hkv > 0 && Hq % Hkv == 0;
}

void attention_prefill_tc(const float* q, int q_ld, int T, int Hq, int pos0, const PagedKV<float>& kv, float scale,
                          float* out, cudaStream_t stream) {
  if (T <= 0) return;
  if (!attention_prefill_tc_supported(kv.d, Hq, kv.hkv) || q_ld % 2 != 0) {
    std::fprintf(stderr, "attention_prefill_tc: unsupported D=%d Hq=%d Hkv=%d q_ld=%d\n", kv.d, Hq, kv.hkv, q_ld);
    std::abort();
  }
  const float sl = scale * 1.4426950408889634f;
  if (kv.d == 128)
    launch<128>(q, q_ld, T, Hq, pos0, kv, sl, out, stream);
  else
    launch<64>(q, q_ld, T, Hq, pos0, kv, sl, out, stream);
}

}  // namespace m1::cuda
