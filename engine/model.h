// Model: the MiniMax-M1 forward pass (m1-model.md §3), written once over engine/backend.h ops.
// SequenceState is one sequence's device state: every lightning layer's fp32 state (one slot) and
// every softmax layer's K/V pages (after RoPE). Sessions (engine/session.h) own one each.
// Decision: a prefill runs in chunks of `prefill_chunk` tokens, so activation memory is bounded by
// the chunk, not the prompt; a chunk of one token takes the decode ops (lightning recurrence), any
// longer chunk the prefill ops (chunked lightning form) — the two agree to rounding.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "common/result.h"
#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/config.h"

namespace m1::engine {

struct ModelOptions {
  int64_t block_size = 0;        // lightning prefill block; 0: config.block_size
  int64_t prefill_chunk = 256;   // tokens per forward chunk
  int64_t kv_page_size = 64;     // tokens per K/V page
};

// Fixed-size K/V pages shared by all sequences and softmax layers of one model.
class KvPool {
 public:
  KvPool(Backend& b, KvPoolShape s) : backend_(b), shape_(s) {}
  Result<int32_t> acquire();
  void release(int32_t page);
  float* const* bases() const { return bases_.data(); }
  const KvPoolShape& shape() const { return shape_; }
  size_t pages_in_use() const { return pages_.size() - free_.size(); }

 private:
  Backend& backend_;
  KvPoolShape shape_;
  std::vector<Buffer> pages_;
  std::vector<float*> bases_;
  std::vector<int32_t> free_;
  std::mutex mu_;
};

struct SequenceState {
  SequenceState() = default;
  SequenceState(const SequenceState&) = delete;
  SequenceState& operator=(const SequenceState&) = delete;
  ~SequenceState();
  Buffer lightning;                              // [n_lightning_layers][nh][hd][hd] fp32
  std::vector<std::vector<int32_t>> kv_pages;    // per softmax layer, in layer order
  int64_t length = 0;                            // tokens processed
  KvPool* pool = nullptr;
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> create(std::shared_ptr<Checkpoint> ckpt, Backend& backend,
                                               ModelOptions opt = {});
  const ModelConfig& config() const { return cfg_; }
  Backend& backend() { return backend_; }
  const ModelOptions& options() const { return opt_; }
  // FNV-1a of config_fingerprint + every tensor's name, dtype and shape (not the contents: hashing
  // a 900 GB checkpoint at load is not affordable). Session files carry it.
  uint64_t identity() const { return identity_; }
  // Ids >= this have all-zero embedding rows at the end of the table (found by scanning back
  // from the last row, so only the zero tail is read): they are never sampled.
  int64_t usable_vocab() const { return usable_vocab_; }
  // Per-head lightning slopes of layer l (m1-model.md §3.1, ALiBi interleave for non-powers of 2).
  const std::vector<float>& slopes(int64_t layer) const { return slopes_[size_t(layer)]; }

  Result<std::unique_ptr<SequenceState>> new_state();
  Result<std::unique_ptr<SequenceState>> copy_state(const SequenceState& s);
  int64_t lightning_state_floats() const;      // per sequence
  int64_t kv_floats_per_token() const;         // per softmax layer: K and V

  // Runs `ids` after st's tokens. logits (host) gets [ids.size()][vocab] when all_logits, else the
  // last token's [vocab]. Ids outside [0, vocab_size) are an error naming the id.
  Status forward(SequenceState& st, std::span<const int32_t> ids, bool all_logits, std::vector<float>* logits);

  // Host copies of the state, for session files: lightning [slot floats]; kv[layer] [length][K row, V row].
  void read_state(const SequenceState& s, std::vector<float>& lightning, std::vector<std::vector<float>>& kv);
  Status write_state(SequenceState& s, const std::vector<float>& lightning,
                     const std::vector<std::vector<float>>& kv, int64_t length);

  struct Layer {
    LayerKind kind;
    Weight in_norm, post_norm;
    Weight qkv, gate, out, attn_norm;  // lightning
    Weight q, k, v, o;                 // softmax
    MoeWeights moe;
    int64_t slot = 0;                  // index among layers of its kind
  };

 private:
  Model(Backend& b) : backend_(b) {}
  Status forward_chunk(SequenceState& st, const int32_t* ids, int64_t T, bool all_logits, float* logits);
  void attention_lightning(const Layer& L, SequenceState& st, int64_t T, float* a, float* out);
  Status attention_softmax(const Layer& L, SequenceState& st, int64_t T, float* a, float* out);
  Status ensure_workspace(int64_t T);

  Backend& backend_;
  std::shared_ptr<Checkpoint> ckpt_;
  ModelConfig cfg_;
  ModelOptions opt_;
  std::vector<Layer> layers_;
  Weight embed_, final_norm_, lm_head_;
  std::vector<std::vector<float>> slopes_;
  std::unique_ptr<KvPool> pool_;
  uint64_t identity_ = 0;
  int64_t usable_vocab_ = 0;
  // Workspace for one chunk (the model runs one forward at a time).
  std::mutex mu_;
  int64_t ws_tokens_ = 0;
  Buffer x_, a_, o_, m_, big_, attn_, gate_, logits_;
};

// Lightning slopes of one layer: 2^(-8(j+1)/h) for a power-of-two head count h (ALiBi's
// closest-power-of-two interleave otherwise), times (1 - l/(L-1) + 1e-5).
std::vector<float> lightning_slopes(int64_t num_heads, int64_t layer, int64_t num_layers);

}  // namespace m1::engine
