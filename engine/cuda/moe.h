// Mixture of experts on the GPU: routing and expert products that read only the chosen experts.
// defines: MoeExperts, moe_route, moe_experts_gate_up, moe_experts_down, moe_combine,
//          moe_gather_rows, moe_combine_sorted (the prefill path: per-expert GEMMs on tensor cores)
// Math (m1-model.md §3.3): p = softmax(fp32 logits); top-k; weights renormalized in fp32;
// out = sum_k w_k * w2_e(SiLU(w1_e x) (.) w3_e x).
// Decisions: routing groups the (token, slot) pairs by expert on the device (no host sync, CUDA
// graph friendly). The expert kernels are grouped GEMVs: a CTA serves one expert's rows for all
// tokens routed to it, so each chosen expert's weights are read once per 4 tokens and unchosen
// experts cost nothing. Prefill-sized batches would be better served by grouped GEMMs on tensor
// cores: the backend (cuda_backend.cpp) gathers each expert's rows (moe_gather_rows), runs one
// cuBLASLt GEMM per chosen expert and projection, and combines (moe_combine_sorted).
#pragma once
#include <cstdint>

#include "engine/cuda/ops.h"

namespace m1::cuda {

constexpr int kMaxExperts = 128;

// Per-expert weight pointers (by value in the kernel parameters).
struct MoeExperts {
  const void* w[kMaxExperts];  // each [N, K] row-major of dtype wt
};

// logits [T, E] fp32 -> topk_w [T, k] (renormalized), and the pairs p = t*k + slot grouped by
// expert: offsets [E+1], sorted_pairs [T*k] (pairs of expert e at offsets[e] .. offsets[e+1]),
// active [E+1] (active[0] = number of experts chosen, then their ids: the expert kernels' grid
// covers min(E, T*k) slots of this list, so unchosen experts cost no blocks at all).
// One launch for the top-k, one single-block launch for the grouping. E <= 128, k <= 8.
void moe_route(const float* logits, int64_t T, int E, int k, float* topk_w, int32_t* topk_ids, int32_t* offsets,
               int32_t* active, int32_t* sorted_pairs, cudaStream_t stream);

// h[p, I] = SiLU(w1_e x_t) (.) (w3_e x_t) for every pair p = t*k + slot routed to expert e.
// x [T, K] fp32; w1, w3: [I, K] per expert.
// max_pairs = T*k (host value, sizes the grid).
void moe_experts_gate_up(const float* x, int k, const MoeExperts& w1, const MoeExperts& w3, WDType wt, int E,
                         const int32_t* offsets, const int32_t* active, const int32_t* sorted_pairs, int64_t max_pairs,
                         float* h, int I, int K, cudaStream_t stream);

// y[p, N] = w2_e h[p] for every pair; w2: [N, I] per expert.
void moe_experts_down(const float* h, const MoeExperts& w2, WDType wt, int E, const int32_t* offsets,
                      const int32_t* active, const int32_t* sorted_pairs, int64_t max_pairs, float* y, int N, int I,
                      cudaStream_t stream);

// out[t, N] = sum_slot topk_w[t, slot] * y[t*k + slot, N].
void moe_combine(const float* y, const float* topk_w, int64_t T, int k, int N, float* out, cudaStream_t stream);

// xs[i, H] = x[sorted_pairs[i] / k, H] for i < P: the rows of each expert made contiguous.
void moe_gather_rows(const float* x, const int32_t* sorted_pairs, int k, int64_t P, int H, float* xs,
                     cudaStream_t stream);
// out[t, N] = sum_slot topk_w[t, slot] * ys[i(t*k + slot), N], ys in expert order (i: the position
// of the pair in sorted_pairs). inv_scratch: device int32 [T*k].
void moe_combine_sorted(const float* ys, const int32_t* sorted_pairs, const float* topk_w, int64_t T, int k, int N,
                        float* out, int32_t* inv_scratch, cudaStream_t stream);

}  // namespace m1::cuda
