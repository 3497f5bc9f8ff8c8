// Session: one sequence's state in the engine — its tokens, every lightning layer's state and every
// softmax layer's K/V (a SequenceState of the Model), and the logits after its last token.
// append() prefills only the new tokens, so an agent's next turn costs only what it adds; decode()
// samples from the last logits and appends the token. fork() copies the state; save()/load() write
// and read it whole, so a loaded session continues exactly where it stopped.
//
// File format (little-endian), version 1:
//   "M1SESSN\0" | u32 version | u32 dtype (0 = fp32) | u64 model identity (Model::identity)
//   | u64 tokens | u64 lightning floats | u64 softmax layers | u64 K/V floats per token per layer
//   | u64 vocab | u64 FNV-1a of the header so far
//   then sections, each followed by its u64 FNV-1a: token ids (i32), lightning state, K/V of each
//   softmax layer ([tokens] K rows then [tokens] V rows), last logits.
// Written to a temporary file in the same folder, flushed and renamed over the target (atomic).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"
#include "engine/model.h"
#include "engine/sampler.h"

namespace m1::engine {

class Session {
 public:
  // context: most tokens the session may hold; 0 = the model's max_position_embeddings.
  static Result<std::unique_ptr<Session>> create(Model& model, int64_t context = 0);

  // Prefill of ids after the current tokens. all_logits (optional): every new position's logits.
  Status append(std::span<const int32_t> ids, std::vector<float>* all_logits = nullptr);
  // Samples the next token from the last logits (on the device when the backend can, see
  // Model::sample_on_device; only the id comes back) and appends it; returns it.
  Result<int32_t> decode(Sampler& sampler, int64_t usable_vocab);

  // After the last token; empty at start. A decode step leaves them on the device (its sampler
  // runs there when the backend can): they are copied here only when asked for.
  const std::vector<float>& logits() const;
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t length() const { return int64_t(tokens_.size()); }
  int64_t context() const { return context_; }
  Model& model() const { return model_; }

  Result<std::unique_ptr<Session>> fork() const;
  Status save(const std::filesystem::path& path) const;
  static Result<std::unique_ptr<Session>> load(Model& model, const std::filesystem::path& path, int64_t context = 0);

 private:
  Session(Model& m, int64_t context) : model_(m), context_(context) {}
  Model& model_;
  int64_t context_;
  std::unique_ptr<SequenceState> state_;
  std::vector<int32_t> tokens_;
  mutable std::vector<float> logits_;
  mutable bool logits_stale_ = false;  // the device holds newer logits than logits_
};

}  // namespace m1::engine
