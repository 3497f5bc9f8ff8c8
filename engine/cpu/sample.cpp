// CPU backend, sampling: the "device" sampler of Backend::sample, which on the CPU reads the logits
// where the last step left them instead of copying the vocabulary-wide row out first. A decode
// step of a small model is dominated by that row: the tiny model (hidden 32, vocabulary 200064)
// spent as long copying, masking and scanning its 800 KB of logits as computing them.
// Decisions:
// - Greedy is one pass over the logits, 16 lanes wide and split across the pool, each chunk
//   keeping its first maximum; chunks are combined in order, which reproduces std::max_element
//   over the masked copy that Sampler::sample takes (the same id, ties to the lower id, NaNs never
//   taken except at id 0, where max_element starts). The scalar loop with the mask check took
//   ~95 us per token on the 2-core VM, 10-15% of the tiny model's decode step.
// - Other temperatures copy the masked logits and run pick_token (engine/sampler.h), the host
//   Sampler's own code, so both roads give the same id for the same draw.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/sampler.h"

namespace m1::engine::cpu {
namespace {

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

struct Best {
  float v = -INFINITY;
  int64_t i = -1;  // -1: nothing above -inf (or only NaN) in the range
};

// The first maximum of logits[lo, hi) with ids whose mask byte is 0 read as -inf (mask null: no
// mask), sixteen lanes at a time: each lane keeps its own first maximum (a strict `<` never takes
// a NaN or a later equal value), then the lanes are merged by value and, among equals, lowest id.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
Best first_max(const float* logits, const uint8_t* mask, int64_t lo, int64_t hi) {
  f32x16 best;
  i32x16 at, lane;
  for (int j = 0; j < 16; ++j) best[j] = -INFINITY, at[j] = -1, lane[j] = j;
  int64_t i = lo;
  for (; i + 16 <= hi; i += 16) {
    f32x16 v;
    std::memcpy(&v, logits + i, sizeof v);
    if (mask) {
      u8x16 m;
      std::memcpy(&m, mask + i, sizeof m);
      const i32x16 keep = __builtin_convertvector(m, i32x16) != 0;
      v = keep ? v : f32x16{} - INFINITY;
    }
    const i32x16 better = best < v;
    best = better ? v : best;
    at = better ? lane + int32_t(i) : at;
  }
  Best b;
  for (int j = 0; j < 16; ++j)
    if (at[j] >= 0 && (b.i < 0 || b.v < best[j] || (b.v == best[j] && at[j] < b.i))) b = Best{best[j], at[j]};
  for (; i < hi; ++i) {  // the tail, after every lane: its ids are the highest
    const float v = mask && !mask[i] ? -INFINITY : logits[i];
    if (b.v < v) b = Best{v, i};
  }
  return b;
}

}  // namespace

Result<int32_t> CpuBackend::sample(const float* logits, int64_t n, const DeviceSampling& p) {
  const int64_t V = std::min(n, std::max<int64_t>(1, p.vocab));
  auto value = [&](int64_t i) {
    return p.mask && (i >= p.mask_len || !p.mask[i]) ? -INFINITY : logits[i];
  };
  if (p.temperature == 0.0f) {
    // Ids at or past the mask's end are never chosen: the scan stops there.
    const int64_t end = p.mask ? std::min(V, p.mask_len) : V;
    constexpr int64_t kChunk = 32768;
    const int64_t chunks = (end + kChunk - 1) / kChunk;
    thread_local std::vector<Best> best;
    best.assign(size_t(std::max<int64_t>(chunks, 1)), Best{});
    Best* b = best.data();
    parallel_for(chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) b[c] = first_max(logits, p.mask, c * kChunk, std::min(end, (c + 1) * kChunk));
    });
    // Merged in id order with a strict `<`, which is std::max_element over the masked row: the
    // first of equal maxima. max_element starts from id 0 whatever its value, so a NaN there (or
    // no value above -inf anywhere) gives 0, as it does on the host.
    Best m;
    for (int64_t c = 0; c < chunks; ++c)
      if (b[c].i >= 0 && (m.i < 0 || m.v < b[c].v)) m = b[c];
    if (m.i < 0 || std::isnan(value(0))) return 0;
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
