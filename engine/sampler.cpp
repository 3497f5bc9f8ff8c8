// Sampler implementation (see sampler.h). Works on a copy of the logits; candidates are sorted once
// by probability so top-k, top-p and min-p are prefix cuts of the same order.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_set>

namespace m1::engine {

Status SamplingParams::validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature))
    return make_error("temperature is " + std::to_string(temperature) + ", expected a number >= 0", 2);
  if (top_k < 0) return make_error("top-k is " + std::to_string(top_k) + ", expected >= 0 (0 = off)", 2);
  if (!(top_p > 0 && top_p <= 1)) return make_error("top-p is " + std::to_string(top_p) + ", expected in (0, 1]", 2);
  if (!(min_p >= 0 && min_p <= 1)) return make_error("min-p is " + std::to_string(min_p) + ", expected in [0, 1]", 2);
  if (!(repetition_penalty > 0))
    return make_error("repetition penalty is " + std::to_string(repetition_penalty) + ", expected > 0", 2);
  return {};
}

double Sampler::uniform() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::sample(std::span<const float> logits, int64_t usable_vocab, std::span<const int32_t> history) {
  const int64_t V = std::min<int64_t>(int64_t(logits.size()), std::max<int64_t>(1, usable_vocab));
  work_.assign(logits.begin(), logits.begin() + V);
  for (int64_t i = 0; i < V && !mask_.empty(); ++i)
    if (i >= int64_t(mask_.size()) || !mask_[size_t(i)]) work_[size_t(i)] = -INFINITY;
  if (p_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen)
      if (id >= 0 && id < V) work_[size_t(id)] = work_[size_t(id)] > 0 ? work_[size_t(id)] / p_.repetition_penalty
                                                                         : work_[size_t(id)] * p_.repetition_penalty;
  }
  return pick_token(work_, idx_, p_, p_.temperature == 0.0f ? 0.0 : uniform());
}

int32_t pick_token(std::vector<float>& work, std::vector<int32_t>& idx, const SamplingParams& p, double u) {
  if (p.temperature == 0.0f) return int32_t(std::max_element(work.begin(), work.end()) - work.begin());
  const int64_t V = int64_t(work.size());
  // Softmax at temperature, in double for the normalizer.
  const float mx = *std::max_element(work.begin(), work.end());
  double sum = 0;
  for (float& w : work) sum += (w = float(std::exp(double(w - mx) / p.temperature)));
  for (float& w : work) w = float(w / sum);
  idx.resize(size_t(V));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t keep = V;
  if (p.top_k > 0) keep = std::min(keep, p.top_k);
  // Candidates in order of probability (ties: lower id first), sorted only as far as the cuts
  // below look: a prefix of 256, grown 8x at a time. Sorting the whole vocabulary (top-p without
  // top-k) took milliseconds per token; the prefix is the same either way (the order is total).
  auto by_prob = [&](int32_t a, int32_t b) { return work[size_t(a)] > work[size_t(b)] || (work[size_t(a)] == work[size_t(b)] && a < b); };
  int64_t sorted = 0;
  auto sort_to = [&](int64_t n) {
    if (n <= sorted) return;
    const int64_t to = std::min(keep, std::max(n, sorted == 0 ? int64_t(256) : 8 * sorted));
    std::partial_sort(idx.begin() + sorted, idx.begin() + to, idx.end(), by_prob);
    sorted = to;
  };
  sort_to(1);
  if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double cum = 0;
    int64_t n = 0;
    while (n < keep) {
      sort_to(n + 1);
      cum += work[size_t(idx[size_t(n++)])];
      if (cum >= p.top_p) break;
    }
    keep = std::max<int64_t>(1, n);
  }
  if (p.min_p > 0.0f) {
    const float floor = p.min_p * work[size_t(idx[0])];
    int64_t n = 1;
    while (n < keep) {
      sort_to(n + 1);
      if (work[size_t(idx[size_t(n)])] < floor) break;
      ++n;
    }
    keep = n;
  }
  sort_to(keep);
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += work[size_t(idx[size_t(i)])];
  double r = u * mass;
  for (int64_t i = 0; i < keep; ++i) {
    r -= work[size_t(idx[size_t(i)])];
    if (r < 0) return idx[size_t(i)];
  }
  return idx[size_t(keep - 1)];
}

}  // namespace m1::engine
