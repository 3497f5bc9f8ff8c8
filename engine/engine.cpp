// Engine::open and the device-name -> backend table (see engine.h). The CUDA backend, when linked,
// provides make_cuda_backend(); it is declared weak here so engine/ builds and links without it.
#include "engine/engine.h"

#include <algorithm>

#include "engine/profile_backend.h"

namespace m1::engine {

Result<std::unique_ptr<Backend>> make_cuda_backend(int device_index) __attribute__((weak));

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      try {
        index = std::stoi(device.substr(5));
      } catch (...) {
        return make_error("device '" + device + "': expected cuda:N with N a GPU index", 2);
      }
    }
    if (!make_cuda_backend) return make_error("device '" + device + "': this build has no CUDA backend", 2);
    return make_cuda_backend(index);
  }
  return make_error("unknown device '" + device + "', expected cpu, cuda or cuda:N", 2);
}

Result<std::unique_ptr<Engine>> Engine::open(const std::filesystem::path& dir, EngineOptions opt) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return make_error("model folder '" + dir.string() + "' does not exist (expected a folder with config.json and safetensors)");
  if (!std::filesystem::exists(dir / "config.json", ec))
    return make_error("model folder '" + dir.string() + "' has no config.json");
  std::unique_ptr<Engine> e(new Engine());
  M1_ASSIGN_OR_RETURN(e->ckpt_, Checkpoint::open(dir));
  M1_ASSIGN_OR_RETURN(e->backend_, make_backend(opt.device));
  if (profiling_requested()) e->backend_ = make_profiling_backend(std::move(e->backend_));
  M1_ASSIGN_OR_RETURN(e->model_, Model::create(e->ckpt_, *e->backend_, opt.model));
  const int64_t V = e->ckpt_->config().vocab_size;
  e->usable_vocab_ = e->model_->usable_vocab();
  const bool has_tok = std::filesystem::exists(dir / "tokenizer.json", ec) ||
                       (std::filesystem::exists(dir / "vocab.json", ec) && std::filesystem::exists(dir / "merges.txt", ec));
  if (has_tok || opt.require_tokenizer) {
    M1_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(dir));
    if (tok.vocab_size() > V)
      return make_error("tokenizer in '" + dir.string() + "' has " + std::to_string(tok.vocab_size()) +
                        " ids but the model's vocab_size is " + std::to_string(V) +
                        " (expected a tokenizer no larger than the embedding table)");
    e->usable_vocab_ = std::min(e->usable_vocab_, tok.vocab_size());
    e->token_mask_.assign(size_t(e->usable_vocab_), 0);
    for (int64_t id = 0; id < e->usable_vocab_; ++id)
      e->token_mask_[size_t(id)] = !tok.token_bytes(int32_t(id)).empty();
    e->tokenizer_ = std::make_unique<Tokenizer>(std::move(tok));
  }
  e->context_ = opt.context > 0 ? opt.context : e->ckpt_->config().max_position_embeddings;
  return e;
}

}  // namespace m1::engine
