// Token sampling on the GPU: launchers. Only the chosen id (device int32) is written; the caller
// copies those 4 bytes back. Rules are engine/sampler.h's (mask -> temperature -> top-k -> top-p
// -> min-p -> draw with the host's uniform u), and so is the arithmetic where it decides the result:
// probabilities float(exp(double(l - max) / T) / sum) with the sum in double, candidates ordered
// by probability descending then id ascending (a stable radix sort), cumulative masses in double.
// defines: SampleParams, sample_workspace_bytes, sample_argmax, sample_distribution
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/cuda/cuda_common.h"

namespace m1::cuda {

struct SampleParams {
  int V = 0;              // ids >= V are never chosen
  const uint8_t* mask = nullptr;  // device [mask_len]; null: every id < V allowed
  int mask_len = 0;
  float temperature = 1.f;  // > 0 for sample_distribution
  int top_k = 0;            // 0: off
  float top_p = 1.f, min_p = 0.f;
  double u = 0;             // uniform draw in [0, 1)
};

// Scratch bytes for either launcher with a vocabulary of V.
size_t sample_workspace_bytes(int V);

// Greedy: the first id of the largest allowed logit (as std::max_element); logits [>= V] fp32.
void sample_argmax(const float* logits, const SampleParams& p, int32_t* out_id, void* ws, cudaStream_t stream);

// Temperature / top-k / top-p / min-p draw.
void sample_distribution(const float* logits, const SampleParams& p, int32_t* out_id, void* ws, cudaStream_t stream);

}  // namespace m1::cuda
