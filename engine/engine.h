// Engine: the facade a caller opens — a model folder becomes checkpoint (memory-mapped weights),
// tokenizer, backend and Model; sessions come from it. One Engine per model folder and device.
// Decision: a tokenizer whose vocabulary is larger than the model's embedding table is refused at
// open (its ids would index past the table); a smaller one is fine and caps the sampled ids.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "common/result.h"
#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/tokenizer.h"

namespace m1::engine {

struct EngineOptions {
  std::string device = "cpu";  // "cpu" (or "cuda" / "cuda:N" in builds with the CUDA backend)
  ModelOptions model;
  int64_t context = 0;         // session context limit; 0: config max_position_embeddings
  bool require_tokenizer = true;
};

// "cpu" -> CpuBackend; "cuda[:N]" -> the CUDA backend when this build has one.
Result<std::unique_ptr<Backend>> make_backend(const std::string& device);

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> open(const std::filesystem::path& dir, EngineOptions opt = {});
  Model& model() { return *model_; }
  Backend& backend() { return *backend_; }
  const ModelConfig& config() const { return ckpt_->config(); }
  const Checkpoint& checkpoint() const { return *ckpt_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // Ids a sampler may choose: below the tokenizer's size and the embedding table's non-zero rows.
  int64_t usable_vocab() const { return usable_vocab_; }
  // 1 for ids that may be sampled: below usable_vocab() and defined by the tokenizer (a trained
  // vocabulary can leave holes below its special tokens). Empty without a tokenizer.
  const std::vector<uint8_t>& token_mask() const { return token_mask_; }
  int64_t context() const { return context_; }
  Result<std::unique_ptr<Session>> new_session() { return Session::create(*model_, context_); }
  Result<std::unique_ptr<Session>> load_session(const std::filesystem::path& p) {
    return Session::load(*model_, p, context_);
  }

 private:
  std::shared_ptr<Checkpoint> ckpt_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int64_t usable_vocab_ = 0;
  int64_t context_ = 0;
  std::vector<uint8_t> token_mask_;
};

}  // namespace m1::engine
