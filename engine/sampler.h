// Sampler: turns one step's logits into a token id. Order of operations (as Hugging Face's
// generation processors apply them): repetition penalty -> mask of unusable ids -> temperature ->
// top-k -> top-p -> min-p -> draw. temperature 0 is greedy (argmax after penalty and mask).
// Decision: the random stream is our own (splitmix64 + 53-bit uniform), not std::*_distribution,
// whose outputs differ between standard libraries: a seed gives the same tokens everywhere.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"

namespace m1::engine {

struct SamplingParams {
  float temperature = 1.0f;        // 0: greedy
  int64_t top_k = 0;               // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off; keeps p >= min_p * p_max
  float repetition_penalty = 1.0f; // 1: off; logit > 0 divided by it, else multiplied
  uint64_t seed = 0;
  // Error naming the parameter and its allowed range.
  Status validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams p) : p_(p), state_(p.seed ^ 0x9e3779b97f4a7c15ull) {}
  const SamplingParams& params() const { return p_; }
  // logits[V]; ids >= usable_vocab, and ids whose mask entry is 0 when a mask is set, are never
  // chosen; history feeds the repetition penalty.
  int32_t sample(std::span<const float> logits, int64_t usable_vocab, std::span<const int32_t> history);
  // allowed[id] != 0 for ids that may be sampled (e.g. ids the tokenizer defines); empty: all.
  void set_mask(std::vector<uint8_t> allowed) { mask_ = std::move(allowed); }
  const std::vector<uint8_t>& mask() const { return mask_; }
  double uniform();  // [0, 1)

 private:
  SamplingParams p_;
  uint64_t state_;
  std::vector<float> work_;
  std::vector<int32_t> idx_;
  std::vector<uint8_t> mask_;
};

// Sampler::sample's rules after the mask and the repetition penalty, on work[V] (overwritten;
// idx is scratch): argmax at temperature 0 (the first of equal maxima), else softmax at the
// temperature -> top-k -> top-p -> min-p -> the candidate where u (in [0, 1)) falls in the kept
// mass. Shared with backends that sample in host memory (the CPU backend's sample()), so both
// roads give the same id for the same draw.
int32_t pick_token(std::vector<float>& work, std::vector<int32_t>& idx, const SamplingParams& p, double u);

}  // namespace m1::engine
