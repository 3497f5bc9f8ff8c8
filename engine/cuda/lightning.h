// Lightning (linear) attention on the GPU: launchers. Math: m1-model.md §3.1.
// defines: HeadSlopes, StatePtrs, lightning_decode, lightning_prefill, lightning_prefill_variant
//
// Layouts (device pointers, row-major). T is float (the backend's fp32 activations) or bf16:
//   qkv   [rows, H, 3, D]  the qkv_proj output, head-major: per head q (D), k (D), v (D)
//   state [H, D, D] fp32 per session; S[i][j], i over the key dim, j over the value dim
//   out   [rows, H, D]     attention output (before the 8192-wide norm and the gate)
// Slopes and the per-session state pointers travel by value in the kernel parameters (no
// uploads, graph-capturable). `silu` applies SiLU to q, k, v on load (fusing the feature map).
// The state after a call is relative to the last processed token.
#pragma once
#include "engine/cuda/cuda_common.h"

namespace m1::cuda {

constexpr int kMaxHeads = 128;     // heads per device
constexpr int kMaxSessions = 256;  // sessions per decode launch / sequences per prefill launch

struct HeadSlopes {
  float v[kMaxHeads];  // decay per step of head h is exp(-v[h])
};
struct StatePtrs {
  float* p[kMaxSessions];  // p[b]: device [H, D, D] fp32 state of session b
};

// One decode step for B sessions: S = lambda S + k^T v; o = q S (one fused pass over the state).
// Any D <= 256; D % 32 == 0 is the fast path.
template <typename T>
void lightning_decode(const T* qkv, const StatePtrs& states, const HeadSlopes& slopes, T* out, int B, int H, int D,
                      bool silu, cudaStream_t stream);

// Chunked prefill of nseq sequences packed along the rows: cu_seqlens [nseq+1] (device) are their
// row offsets. D == 128 runs the tensor-core kernel (wmma bf16 operands, fp32 accumulation, blocks
// of 64 tokens); other D <= 128 run a plain recurrent kernel (fp32 throughout).
template <typename T>
void lightning_prefill(const T* qkv, const int* cu_seqlens, int nseq, const StatePtrs& states,
                       const HeadSlopes& slopes, T* out, int H, int D, bool silu, cudaStream_t stream);

// Kernel-lab selector (bench/cuda): 0 = recurrent fallback, 1 = wmma W=32 4 warps, 2 = wmma W=64
// 4 warps, 3 = wmma W=32 8 warps (2 CTAs/SM at <= 128 registers); same
// contract as lightning_prefill (1-3 need D == 128).
template <typename T>
void lightning_prefill_variant(int variant, const T* qkv, const int* cu_seqlens, int nseq, const StatePtrs& states,
                               const HeadSlopes& slopes, T* out, int H, int D, bool silu, cudaStream_t stream);

}  // namespace m1::cuda
