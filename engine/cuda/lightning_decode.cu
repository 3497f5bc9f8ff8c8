// Lightning-attention decode step, fused: S = lambda S + k^T v and o = q S in one pass over the
// fp32 state (the only large operand: read once, written once), batched over sessions.
// Decision: the grid splits each head's state by 32-column slices, so even batch 1 has
// H * D/32 blocks (256 for M1) to fill the GPU; each thread keeps NP float4 loads in flight.
#include "engine/cuda/lightning.h"

namespace m1::cuda {
namespace {

__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + __expf(-x)); }

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(bf16* p, float x) { *p = __float2bfloat16(x); }

template <typename T>
__device__ __forceinline__ float load_act(const T* p, bool silu) {
  const float x = to_f(*p);
  return silu ? silu_f(x) : x;
}

// grid (D/32, H, B), block 256: thread (rg = t/8, cg = t%8) owns columns c0+4cg..+3 of rows
// rg + 32p, p < NP (NP = D/32). Partial sums over rows are reduced through shared memory.
template <int NP, typename T>
__global__ void __launch_bounds__(256) lightning_decode_kernel1(const T* __restrict__ qkv, StatePtrs states,
                                                                HeadSlopes slopes, T* __restrict__ out, int H,
                                                                bool silu) {
  constexpr int D = NP * 32;
  const int b = blockIdx.z, h = blockIdx.y, c0 = blockIdx.x * 32;
  const int t = threadIdx.x, cg = t & 7, rg = t >> 3;
  const T* base = qkv + ((size_t)b * H + h) * 3 * D;
  float* S = states.p[b] + (size_t)h * D * D;
  const float lam = __expf(-slopes.v[h]);

  float4 s[NP];
#pragma unroll
  for (int p = 0; p < NP; ++p)
    s[p] = *reinterpret_cast<const float4*>(S + (size_t)(rg + 32 * p) * D + c0 + 4 * cg);
  float v[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) v[c] = load_act(base + 2 * D + c0 + 4 * cg + c, silu);

  float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int p = 0; p < NP; ++p) {
    const int r = rg + 32 * p;
    const float q = load_act(base + r, silu), k = load_act(base + D + r, silu);
    float4 x = s[p];
    x.x = lam * x.x + k * v[0];
    x.y = lam * x.y + k * v[1];
    x.z = lam * x.z + k * v[2];
    x.w = lam * x.w + k * v[3];
    *reinterpret_cast<float4*>(S + (size_t)r * D + c0 + 4 * cg) = x;
    acc[0] += q * x.x;
    acc[1] += q * x.y;
    acc[2] += q * x.z;
    acc[3] += q * x.w;
  }
  __shared__ float red[32][33];
#pragma unroll
  for (int c = 0; c < 4; ++c) red[rg][4 * cg + c] = acc[c];
  __syncthreads();
  if (t < 32) {
    float sum = 0.f;
#pragma unroll 8
    for (int r = 0; r < 32; ++r) sum += red[r][t];
    store_f(out + ((size_t)b * H + h) * D + c0 + t, sum);
  }
}

// Any D: grid (H, B), block D threads; thread j walks column j of the state.
template <typename T>
__global__ void lightning_decode_kernel0(const T* __restrict__ qkv, StatePtrs states, HeadSlopes slopes,
                                         T* __restrict__ out, int H, int D, bool silu) {
  extern __shared__ float qk[];  // [2][D]
  const int b = blockIdx.y, h = blockIdx.x, j = threadIdx.x;
  const T* base = qkv + ((size_t)b * H + h) * 3 * D;
  float* S = states.p[b] + (size_t)h * D * D;
  const float lam = __expf(-slopes.v[h]);
  qk[j] = load_act(base + j, silu);
  qk[D + j] = load_act(base + D + j, silu);
  const float v = load_act(base + 2 * D + j, silu);
  __syncthreads();
  float acc = 0.f;
  for (int i = 0; i < D; ++i) {
    const float x = lam * S[(size_t)i * D + j] + qk[D + i] * v;
    S[(size_t)i * D + j] = x;
    acc += qk[i] * x;
  }
  store_f(out + ((size_t)b * H + h) * D + j, acc);
}

}  // namespace

template <typename T>
void lightning_decode(const T* qkv, const StatePtrs& states, const HeadSlopes& slopes, T* out, int B, int H, int D,
                      bool silu, cudaStream_t stream) {
  if (B <= 0) return;
  if (D <= 0 || D > 256 || H <= 0 || H > kMaxHeads || B > kMaxSessions) {
    std::fprintf(stderr, "lightning_decode: unsupported shape B=%d H=%d D=%d (B<=%d, H<=%d, D<=256)\n", B, H, D,
                 kMaxSessions, kMaxHeads);
    std::abort();
  }
  if (D % 32 == 0) {
    dim3 grid(D / 32, H, B);
    switch (D / 32) {
#define M1_CASE(np) \
  case np: lightning_decode_kernel1<np, T><<<grid, 256, 0, stream>>>(qkv, states, slopes, out, H, silu); break;
      M1_CASE(1) M1_CASE(2) M1_CASE(3) M1_CASE(4) M1_CASE(5) M1_CASE(6) M1_CASE(7) M1_CASE(8)
#undef M1_CASE
    }
  } else {
    lightning_decode_kernel0<T><<<dim3(H, B), D, 2 * D * sizeof(float), stream>>>(qkv, states, slopes, out, H, D,
                                                                                   silu);
  }
  M1_CUDA_CHECK_LAUNCH();
}
template void lightning_decode<float>(const float*, const StatePtrs&, const HeadSlopes&, float*, int, int, int, bool,
                                      cudaStream_t);
template void lightning_decode<bf16>(const bf16*, const StatePtrs&, const HeadSlopes&, bf16*, int, int, int, bool,
                                     cudaStream_t);

}  // namespace m1::cuda
