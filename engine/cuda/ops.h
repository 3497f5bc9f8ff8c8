// Row-wise and elementwise ops of the model graph on the GPU (fp32 activations, weights in the
// checkpoint's dtype): launchers.
// defines: WDType, rmsnorm, rmsnorm_residual, rmsnorm_sigmoid_gate, axpby, silu_inplace, sigmoid_mul, silu_mul, rope_neox,
//          embedding_gather, cast_f32_to_bf16, cast_f32_to_f16, fill_normal
// Math: m1-model.md §3. Shapes in each comment; all pointers are device pointers.
#pragma once
#include <cstdint>

#include <cuda_fp16.h>

#include "engine/cuda/cuda_common.h"

namespace m1::cuda {

// Element type of a weight (mirrors engine::DType's float kinds).
enum class WDType : uint8_t { F32, F16, BF16 };

// y[rows, n] = w (.) (x * rsqrt(mean(x^2) + eps)); w [n] of dtype wt. y may alias x. n <= 16384.
void rmsnorm(const float* x, const void* w, WDType wt, float eps, float* y, int64_t rows, int64_t n,
             cudaStream_t stream);

// Fused postnorm step: r = alpha * a + beta * b (b may be null: r = a), y = rmsnorm(r).
// r_out (optional) receives r. Any of y, r_out may alias a or b.
void rmsnorm_residual(const float* a, const float* b, float alpha, float beta, const void* w, WDType wt, float eps,
                      float* y, float* r_out, int64_t rows, int64_t n, cudaStream_t stream);

// y[rows, n] = sigmoid(gate) (.) rmsnorm(x) with weight w (y may alias x): the lightning layer's
// output norm and gate in one pass.
void rmsnorm_sigmoid_gate(const float* x, const void* w, WDType wt, float eps, const float* gate, float* y,
                          int64_t rows, int64_t n, cudaStream_t stream);

// y[n] = alpha * a + beta * b (aliasing allowed).
void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y, cudaStream_t stream);
// x[n] = x / (1 + exp(-x)).
void silu_inplace(float* x, int64_t n, cudaStream_t stream);
// y[n] = sigmoid(gate[n]) * x[n] (aliasing allowed).
void sigmoid_mul(const float* gate, const float* x, int64_t n, float* y, cudaStream_t stream);
// y[n] = SiLU(g[n]) * u[n] (aliasing allowed).
void silu_mul(const float* g, const float* u, int64_t n, float* y, cudaStream_t stream);
// p[n] of dtype wt = mean + std * N(0, 1), element i a function of (seed, i) only (hash + Box-Muller;
// never all zeros); std == 0 writes `mean` exactly.
void fill_normal(void* p, WDType wt, int64_t n, uint64_t seed, float mean, float std, cudaStream_t stream);

// NeoX rotate-half RoPE in place on the first rotary_dim dims of each head: x [rows, heads, head_dim];
// pos [rows] (device) positions; angles in fp32 as the reference (inv_freq = theta^(-2i/rotary_dim)).
void rope_neox(float* x, const int64_t* pos, int64_t rows, int heads, int head_dim, int rotary_dim, float theta,
               cudaStream_t stream);

// y[rows, n] = table[ids[r], :] (table [vocab, n] of dtype wt; ids device). Ids outside [0, vocab)
// give zero rows.
void embedding_gather(const void* table, WDType wt, const int32_t* ids, float* y, int64_t rows, int64_t n,
                      int64_t vocab, cudaStream_t stream);

// Casts for feeding fp32 activations to bf16/fp16 GEMMs.
void cast_f32_to_bf16(const float* x, bf16* y, int64_t n, cudaStream_t stream);
void cast_f32_to_f16(const float* x, __half* y, int64_t n, cudaStream_t stream);

}  // namespace m1::cuda
