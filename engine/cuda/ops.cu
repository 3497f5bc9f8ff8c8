// Row-wise and elementwise ops (norms with residual scales, gates, RoPE, embedding, casts). All
// memory bound: one block per row for the norms (row held in registers between the sum of squares
// and the scaling: one read, one write), grid-stride loops for elementwise ops, fp32 math.
#include <algorithm>

#include "engine/cuda/wtype.cuh"

namespace m1::cuda {
namespace {

// Sum over the block (blockDim.x a multiple of 32, <= 1024).
__device__ float block_sum(float v) {
  __shared__ float part[32];
  __shared__ float total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

// 1024 threads x 16 values: rows up to 16384 wide stay in registers. A decode step's rows are one
// CTA each, so fewer values per thread is less serial latency: on an H200 the m1-block decode step
// took 3.182-3.219 ms with 512 x 32 and 3.156-3.172 with 1024 x 16 (64K: 3.582 vs 3.523-3.538).
constexpr int kThreads = 1024, kMaxPer = 16;

template <typename WT, bool GATE>
__global__ void __launch_bounds__(kThreads) rmsnorm_residual_kernel(const float* a, const float* b, float alpha,
                                                                    float beta, const WT* __restrict__ w,
                                                                    float eps, float* y, float* r_out, int n,
                                                                    const float* gate) {
  const size_t row = blockIdx.x;
  float x[kMaxPer];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    const int i = threadIdx.x + k * kThreads;
    x[k] = 0.f;
    if (i < n) {
      float v = a[row * n + i];
      if (b) v = alpha * v + beta * b[row * n + i];
      x[k] = v;
      ss += v * v;
    }
  }
  const float inv = rsqrtf(block_sum(ss) / (float)n + eps);  // every read is done past this barrier
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < n) {
      if (r_out) r_out[row * n + i] = x[k];
      const float v = wf(w[i]) * (x[k] * inv);
      y[row * n + i] = GATE ? v / (1.f + expf(-gate[row * n + i])) : v;  // sigmoid_mul's formula
    }
  }
}

__global__ void axpby_kernel(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = alpha * a[i] + beta * b[i];
}
__global__ void silu_kernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = x[i] / (1.f + expf(-x[i]));
}
__global__ void sigmoid_mul_kernel(const float* g, const float* x, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = x[i] / (1.f + expf(-g[i]));
}
__global__ void cast_bf16_kernel(const float* x, bf16* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = __float2bfloat16(x[i]);
}
__global__ void cast_f16_kernel(const float* x, __half* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = __float2half(x[i]);
}

// grid rows; threads loop over (head, i < rotary_dim/2).
__global__ void rope_neox_kernel(float* x, const int64_t* __restrict__ pos, int heads, int head_dim,
                                 int rotary_dim, float theta) {
  const int64_t r = blockIdx.x;
  const int half = rotary_dim / 2;
  const float p = (float)pos[r];
  for (int e = threadIdx.x; e < heads * half; e += blockDim.x) {
    const int hh = e / half, i = e % half;
    const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)rotary_dim);
    float s, c;
    sincosf(p * inv_freq, &s, &c);
    float* hp = x + (r * heads + hh) * head_dim;
    const float a = hp[i], b = hp[i + half];
    hp[i] = a * c - b * s;
    hp[i + half] = b * c + a * s;
  }
}

template <typename WT>
__global__ void embedding_kernel(const WT* __restrict__ table, const int32_t* __restrict__ ids, float* y, int64_t n,
                                 int64_t vocab) {
  const int64_t r = blockIdx.y, i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t id = ids[r];
  y[r * n + i] = (id >= 0 && id < vocab) ? wf(table[id * n + i]) : 0.f;
}

__global__ void silu_mul_kernel(const float* g, const float* u, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = g[i] / (1.f + expf(-g[i])) * u[i];
}

// Counter-based normal values: element i depends only on (seed, i) (hash + Box-Muller).
__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
  return (uint32_t)x;
}
template <typename WT>
__global__ void fill_normal_kernel(WT* p, int64_t n, uint64_t seed, float mean, float std) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = mean;
    if (std != 0.f) {
      const uint64_t key = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i * 2;
      const float u1 = (hash32(key + 1) + 1.0f) * 2.3283064e-10f;  // (0, 1]
      const float u2 = hash32(key + 2) * 2.3283064e-10f;
      v = mean + std * sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
    }
    p[i] = (WT)v;
  }
}

int grid_for(int64_t n) { return (int)std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 132 * 32)); }

}  // namespace

namespace {
void rmsnorm_fused(const float* a, const float* b, float alpha, float beta, const void* w, WDType wt, float eps,
                   const float* gate, float* y, float* r_out, int64_t rows, int64_t n, cudaStream_t stream) {
  if (rows <= 0) return;
  if (n <= 0 || n > kThreads * kMaxPer) {
    std::fprintf(stderr, "rmsnorm: width %lld unsupported (1..%d)\n", (long long)n, kThreads * kMaxPer);
    std::abort();
  }
  // GATE is a template flag: the plain norm keeps its registers (a runtime branch on the gate
  // made every norm ~50% slower on an H200).
  if (gate) {
    M1_WDTYPE_SWITCH(wt, (rmsnorm_residual_kernel<WT, true><<<(unsigned)rows, kThreads, 0, stream>>>(
                             a, b, alpha, beta, static_cast<const WT*>(w), eps, y, r_out, (int)n, gate)));
  } else {
    M1_WDTYPE_SWITCH(wt, (rmsnorm_residual_kernel<WT, false><<<(unsigned)rows, kThreads, 0, stream>>>(
                             a, b, alpha, beta, static_cast<const WT*>(w), eps, y, r_out, (int)n, gate)));
  }
  M1_CUDA_CHECK_LAUNCH();
}
}  // namespace

void rmsnorm_residual(const float* a, const float* b, float alpha, float beta, const void* w, WDType wt, float eps,
                      float* y, float* r_out, int64_t rows, int64_t n, cudaStream_t stream) {
  rmsnorm_fused(a, b, alpha, beta, w, wt, eps, nullptr, y, r_out, rows, n, stream);
}

void rmsnorm_sigmoid_gate(const float* x, const void* w, WDType wt, float eps, const float* gate, float* y,
                          int64_t rows, int64_t n, cudaStream_t stream) {
  rmsnorm_fused(x, nullptr, 1.f, 0.f, w, wt, eps, gate, y, nullptr, rows, n, stream);
}

void rmsnorm(const float* x, const void* w, WDType wt, float eps, float* y, int64_t rows, int64_t n,
             cudaStream_t stream) {
  rmsnorm_residual(x, nullptr, 1.f, 0.f, w, wt, eps, y, nullptr, rows, n, stream);
}

void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y, cudaStream_t stream) {
  if (n <= 0) return;
  axpby_kernel<<<grid_for(n), 256, 0, stream>>>(alpha, a, beta, b, n, y);
  M1_CUDA_CHECK_LAUNCH();
}
void silu_inplace(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  silu_kernel<<<grid_for(n), 256, 0, stream>>>(x, n);
  M1_CUDA_CHECK_LAUNCH();
}
void sigmoid_mul(const float* gate, const float* x, int64_t n, float* y, cudaStream_t stream) {
  if (n <= 0) return;
  sigmoid_mul_kernel<<<grid_for(n), 256, 0, stream>>>(gate, x, n, y);
  M1_CUDA_CHECK_LAUNCH();
}
void silu_mul(const float* g, const float* u, int64_t n, float* y, cudaStream_t stream) {
  if (n <= 0) return;
  silu_mul_kernel<<<grid_for(n), 256, 0, stream>>>(g, u, n, y);
  M1_CUDA_CHECK_LAUNCH();
}
void fill_normal(void* p, WDType wt, int64_t n, uint64_t seed, float mean, float std, cudaStream_t stream) {
  if (n <= 0) return;
  M1_WDTYPE_SWITCH(wt, (fill_normal_kernel<WT><<<grid_for(n), 256, 0, stream>>>(static_cast<WT*>(p), n, seed, mean,
                                                                                std)));
  M1_CUDA_CHECK_LAUNCH();
}
void cast_f32_to_bf16(const float* x, bf16* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  cast_bf16_kernel<<<grid_for(n), 256, 0, stream>>>(x, y, n);
  M1_CUDA_CHECK_LAUNCH();
}
void cast_f32_to_f16(const float* x, __half* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  cast_f16_kernel<<<grid_for(n), 256, 0, stream>>>(x, y, n);
  M1_CUDA_CHECK_LAUNCH();
}

void rope_neox(float* x, const int64_t* pos, int64_t rows, int heads, int head_dim, int rotary_dim, float theta,
               cudaStream_t stream) {
  if (rows <= 0) return;
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    std::fprintf(stderr, "rope_neox: rotary_dim %d invalid for head_dim %d\n", rotary_dim, head_dim);
    std::abort();
  }
  const int threads = std::min(1024, ((heads * rotary_dim / 2) + 31) / 32 * 32);
  rope_neox_kernel<<<(unsigned)rows, threads, 0, stream>>>(x, pos, heads, head_dim, rotary_dim, theta);
  M1_CUDA_CHECK_LAUNCH();
}

void embedding_gather(const void* table, WDType wt, const int32_t* ids, float* y, int64_t rows, int64_t n,
                      int64_t vocab, cudaStream_t stream) {
  if (rows <= 0) return;
  // grid (ceil(n / 256), rows): one element per thread (a CTA looping over a 6144-wide row was a
  // chain of 24 load latencies, ~20 us of every decode step).
  for (int64_t r0 = 0; r0 < rows; r0 += 65535) {  // grid.y limit
    const dim3 grid((unsigned)((n + 255) / 256), (unsigned)std::min<int64_t>(65535, rows - r0));
    M1_WDTYPE_SWITCH(wt, (embedding_kernel<WT><<<grid, 256, 0, stream>>>(static_cast<const WT*>(table), ids + r0,
                                                                          y + r0 * n, n, vocab)));
    M1_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace m1::cuda
