// Checkpoint: a Hugging Face model folder's tensors, memory-mapped and looked up by name through
// model.safetensors.index.json (or a single model.safetensors). Tensors are never copied here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "engine/config.h"
#include "engine/dtype.h"

namespace m1::engine {

// A read-only view of one tensor (or a slice of rows of one, for stacked experts).
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // points into the memory map
  size_t nbytes = 0;
  std::string file;                 // shard it lives in (for error messages)
  // F8_E4M3 weights: the companion `<name>_scale_inv` or `<name>_scale` tensor when the
  // checkpoint has one (owned by the Checkpoint; recorded, not applied yet). Else nullptr.
  const TensorView* scale = nullptr;

  int64_t numel() const;
  // Element i converted to fp32 (slow path for tests; kernels convert in bulk).
  float at(int64_t i) const;
};

class Checkpoint {
 public:
  // Opens DIR: reads config.json, the index (or the single file), maps every shard, validates
  // each shard's header (offsets inside the file, sizes matching dtype x shape).
  static Result<std::shared_ptr<Checkpoint>> open(const std::filesystem::path& dir);

  const ModelConfig& config() const;
  const std::filesystem::path& dir() const;
  // nullptr when absent.
  const TensorView* find(std::string_view name) const;
  // Error naming the tensor, its file and the expected shape when absent or shaped otherwise.
  Result<TensorView> get(std::string_view name, std::span<const int64_t> expected_shape) const;
  std::vector<std::string> names() const;
  uint64_t total_bytes() const;
  // Safetensors files mapped (1 for a single model.safetensors).
  size_t num_files() const;

  ~Checkpoint();
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  friend struct Impl;
};

// The tensors of one decoder layer, bound by name and validated against the config.
// Both MoE layouts (m1-model.md §2) end up as per-expert views here.
struct LayerWeights {
  LayerKind kind = LayerKind::Lightning;
  TensorView input_norm, post_norm;            // [H]
  // Lightning: qkv [3*nh*hd, H] head-major; output_gate [nh*hd, H]; out_proj [H, nh*hd]; norm [nh*hd]
  TensorView qkv, output_gate, out_proj, attn_norm;
  // Softmax: q [nh*hd, H], k/v [nkv*hd, H], o [H, nh*hd]
  TensorView q, k, v, o;
  TensorView router;                           // [E, H]
  std::vector<TensorView> w1, w3;              // per expert [I, H] (w1 = gate/SiLU side, w3 = up)
  std::vector<TensorView> w2;                  // per expert [H, I]
  bool stacked_experts = false;                // true when bound from mlp.experts.gate_up_proj/down_proj
};

struct ModelWeights {
  TensorView embed;       // [V, H]
  TensorView final_norm;  // [H]
  TensorView lm_head;     // [V, H] (embed when tie_word_embeddings)
  std::vector<LayerWeights> layers;
};

// Binds and shape-checks every tensor the forward pass needs; the first problem is returned
// as one clear error (file, tensor, expected vs found). The views point into the Checkpoint's
// memory maps: keep the Checkpoint alive as long as the ModelWeights.
Result<ModelWeights> bind_weights(const Checkpoint& ckpt);

}  // namespace m1::engine
