// ModelConfig: the MiniMax-M1 hyper-parameters, read from config.json in either the original
// M1 format (attn_type_list, layernorm_*_alpha/beta, rotary_dim) or transformers' in-tree
// `minimax` format (layer_types, *_alpha_factor, rope_parameters, block_size). See m1-model.md §1.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/dtype.h"

namespace m1::engine {

enum class LayerKind : uint8_t { Lightning = 0, Softmax = 1 };
enum class ConfigFormat : uint8_t { Original, HF };

struct ModelConfig {
  ConfigFormat format = ConfigFormat::Original;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;         // per expert
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;       // both layer kinds
  int64_t num_key_value_heads = 0;       // softmax layers (GQA)
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;                // partial RoPE width (== head_dim in the HF port)
  int64_t num_local_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t shared_intermediate_size = 0;  // must be 0 (no shared expert in M1)
  int64_t max_position_embeddings = 0;
  int64_t block_size = 256;              // lightning prefill block
  double rms_norm_eps = 1e-5;
  double rope_theta = 1e7;
  std::vector<LayerKind> layer_kinds;    // size num_hidden_layers
  double linear_attn_alpha = 1, linear_attn_beta = 1;
  double full_attn_alpha = 1, full_attn_beta = 1;
  double mlp_alpha = 1, mlp_beta = 1;
  bool postnorm = true;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1, eos_token_id = -1;  // -1 when null/absent
  std::vector<int64_t> eos_token_ids;            // all of them when config.json gives a list
  DType dtype = DType::BF16;             // torch_dtype
  nlohmann::json raw;                    // the file as read, for fields we do not model

  int64_t num_softmax_layers() const;
  int64_t num_lightning_layers() const;
};

// Reads DIR/config.json (or the file itself). Errors name the file and the missing/bad field.
Result<ModelConfig> load_config(const std::filesystem::path& dir_or_file);
Result<ModelConfig> parse_config(const nlohmann::json& j, const std::string& source_name);
// Serializes in the requested format (round-trips through parse_config).
nlohmann::json config_to_json(const ModelConfig& c, ConfigFormat format);
// A stable identity of the model's shape and weights' files (for session snapshots).
std::string config_fingerprint(const ModelConfig& c);

}  // namespace m1::engine
