// CPU backend, sampling: the "device" sampler of Backend::sample, which on the CPU reads the logits
// where the last step left them instead of copying the vocabulary-wide row out first. A decode
// step of a small model is dominated by that row: the tiny model (hidden 32, vocabulary 200064)
// spent as long copying, masking and scanning its 800 KB of logits as computing them.
// Decisions:
// - Greedy is one pass over the logits, split across the pool, each chunk keeping its first
//   maximum; chunks are combined in order, which reproduces std::max_element over the masked copy
//   that Sampler::sample takes (the same id, ties to the lower id; a NaN row gives what it gives
//   there: index 0 when the first logit is NaN).
// - Other temperatures copy the masked logits and run pick_token (engine/sampler.h), the host
//   Sampler's own code, so both roads give the same id for the same draw.
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/sampler.h"

namespace m1::engine::cpu {
namespace {

struct Best {
  float v = -INFINITY;
  int64_t i = -1;  // -1: no candidate above -inf in the chunk
};

}  // namespace

Result<int32_t> CpuBackend::sample(const float* logits, int64_t n, const DeviceSampling& p) {
  const int64_t V = std::min(n, std::max<int64_t>(1, p.vocab));
  auto value = [&](int64_t i) {
    return p.mask && (i >= p.mask_len || !p.mask[i]) ? -INFINITY : logits[i];
  };
  if (p.temperature == 0.0f) {
    constexpr int64_t kChunk = 32768;
    const int64_t chunks = (V + kChunk - 1) / kChunk;
    thread_local std::vector<Best> best;
    best.assign(size_t(chunks), Best{});
    Best* b = best.data();
    parallel_for(chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        Best m;
        const int64_t end = std::min(V, (c + 1) * kChunk);
        int64_t i = c * kChunk;
        if (c == 0) m = Best{value(0), 0}, ++i;  // max_element starts from the first element
        for (; i < end; ++i) {
          const float v = value(i);
          if (m.v < v) m = Best{v, i};
        }
        b[c] = m;
      }
    });
    Best m = best[0];
    for (int64_t c = 1; c < chunks; ++c)
      if (best[size_t(c)].i >= 0 && m.v < best[size_t(c)].v) m = best[size_t(c)];
    return int32_t(m.i);
  }
  thread_local std::vector<float> work;
  thread_local std::vector<int32_t> idx;
  work.resize(size_t(V));
  for (int64_t i = 0; i < V; ++i) work[size_t(i)] = value(i);
  SamplingParams sp;
  sp.temperature = p.temperature, sp.top_k = p.top_k, sp.top_p = p.top_p, sp.min_p = p.min_p;
  return pick_token(work, idx, sp, p.u);
}

}  // namespace m1::engine::cpu
