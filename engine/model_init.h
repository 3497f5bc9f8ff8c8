// Random model folders in the real checkpoint format (`m1 model init`): config.json, safetensors
// (single file or index + shards) and the project's tokenizer files. Weights are normal(0, 0.02)
// from a counter-based generator, so any element can be recomputed from (seed, tensor name, index)
// without the rest: tests check values without keeping copies, and multi-GB shards are written
// in parallel chunks, streaming, never holding a tensor in memory.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "engine/config.h"
#include "engine/safetensors.h"

namespace m1::engine {

// Presets: "tiny" (CPU tests), "m1-block" (performance.md's 8-layer benchmark model),
// "m1" (the full 80-layer MiniMax-M1 shape). layers > 0 overrides num_hidden_layers, keeping
// M1's pattern (every 8th layer softmax) and turning the last layer softmax when that pattern
// would have none.
Result<ModelConfig> preset_config(std::string_view preset, int64_t layers = 0);
std::vector<std::string> preset_names();

// The tensors of a model with config `c`, in checkpoint order. ConfigFormat::Original gives
// MiniMax's names (per-expert block_sparse_moe.experts.E.w1/w2/w3); HF gives transformers v5's
// stacked mlp.experts.gate_up_proj / down_proj. Weights use `dtype`; routers are F32 (as the
// real checkpoint probably stores them); norms are `dtype`.
std::vector<TensorSpec> model_tensors(const ModelConfig& c, ConfigFormat format, DType dtype);

// True for norm weights (written as 1.0); false for weights drawn from normal(0, 0.02).
bool is_norm_tensor(std::string_view name);
// The exact fp32 value init writes at element i of tensor `name` (before rounding to the dtype).
float init_value(uint64_t seed, std::string_view name, uint64_t i);
// Fills `out` with bytes [byte_offset, byte_offset + out.size()) of tensor t as init writes them
// (init_value rounded to t.dtype; F32/F16/BF16 only). Parallel (OpenMP) over elements.
void fill_init_values(const TensorSpec& t, uint64_t seed, uint64_t byte_offset, std::span<std::byte> out);

struct InitOptions {
  std::string preset = "tiny";
  std::optional<ModelConfig> config;   // when set: this shape instead of preset/layers (validated)
  std::filesystem::path out;
  uint64_t seed = 0;
  int64_t layers = 0;                  // 0: the preset's
  ConfigFormat format = ConfigFormat::Original;
  DType dtype = DType::BF16;
  uint64_t shard_bytes = 0;            // 0: 8 MB for tiny, 2 GB otherwise
  bool force = false;                  // replace an existing non-empty --out
  bool sync = true;                    // fdatasync files before the final rename
  WriteProgress progress;              // optional
  uint64_t assume_free_bytes = 0;      // tests only: free space to assume (0: ask the filesystem)
};

struct InitResult {
  ModelConfig config;
  std::vector<std::string> files;      // written into `out`
  uint64_t tensor_bytes = 0;
  uint64_t num_tensors = 0;
};

// Writes the folder atomically: everything goes into a hidden temp folder beside `out`, which is
// renamed into place only once complete (a crash never leaves a half-written `out`). Refuses when
// the disk lacks the space, naming both numbers.
Result<InitResult> init_model(const InitOptions& opt);

// Error when `needed` bytes do not fit in `available` (with a small margin); names `where`.
Status check_disk_space(uint64_t needed, uint64_t available, const std::filesystem::path& where);

// "64MB", "5GB", "1.5GiB", "1048576" -> bytes (KB/MB/GB/TB decimal, KiB/MiB/GiB binary).
Result<uint64_t> parse_byte_size(std::string_view s);
std::string format_bytes(uint64_t b);  // "95.6 GB"

}  // namespace m1::engine
