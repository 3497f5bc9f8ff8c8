// config.json parsing: MiniMax's original M1 config, transformers' `minimax` config (as
// transformers 5.17 wrote it into the parity fixtures), defaults, every validation error, and
// the round trip through config_to_json in both formats.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "engine/config.h"

using namespace m1::engine;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The real MiniMax-M1-80k config.json (attn_type_list abbreviated by construction).
json m1_config() {
  json at = json::array();
  for (int i = 0; i < 80; ++i) at.push_back(i % 8 == 7 ? 1 : 0);
  return json{{"architectures", {"MiniMaxM1ForCausalLM"}},
              {"attn_type_list", at},
              {"bos_token_id", nullptr},
              {"eos_token_id", nullptr},
              {"head_dim", 128},
              {"hidden_act", "silu"},
              {"hidden_size", 6144},
              {"intermediate_size", 9216},
              {"layernorm_full_attention_alpha", 3.5565588200778455},
              {"layernorm_full_attention_beta", 1.0},
              {"layernorm_linear_attention_alpha", 3.5565588200778455},
              {"layernorm_linear_attention_beta", 1.0},
              {"layernorm_mlp_alpha", 3.5565588200778455},
              {"layernorm_mlp_beta", 1.0},
              {"max_position_embeddings", 10240000},
              {"model_type", "minimax_m1"},
              {"num_attention_heads", 64},
              {"num_experts_per_tok", 2},
              {"num_hidden_layers", 80},
              {"num_key_value_heads", 8},
              {"num_local_experts", 32},
              {"postnorm", true},
              {"rms_norm_eps", 1e-05},
              {"rope_theta", 10000000},
              {"rotary_dim", 64},
              {"shared_intermediate_size", 0},
              {"shared_moe_mode", "sigmoid"},
              {"tie_word_embeddings", false},
              {"torch_dtype", "bfloat16"},
              {"vocab_size", 200064}};
}

json hf_fixture_config() {
  std::ifstream in(fs::path(M1_SOURCE_DIR) / "tests/fixtures/parity/gqa1_hd16/hf/config.json");
  return json::parse(in);
}

std::string parse_error(const json& j) {
  auto r = parse_config(j, "/m/config.json");
  EXPECT_FALSE(r.ok()) << j.dump();
  return r.ok() ? "" : r.error().message;
}

}  // namespace

TEST(Config, OriginalM1) {
  auto r = parse_config(m1_config(), "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelConfig& c = *r;
  EXPECT_EQ(c.format, ConfigFormat::Original);
  EXPECT_EQ(c.vocab_size, 200064);
  EXPECT_EQ(c.hidden_size, 6144);
  EXPECT_EQ(c.num_hidden_layers, 80);
  EXPECT_EQ(c.num_attention_heads, 64);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.num_local_experts, 32);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.intermediate_size, 9216);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e7);
  EXPECT_DOUBLE_EQ(c.linear_attn_alpha, 3.5565588200778455);
  EXPECT_DOUBLE_EQ(c.mlp_beta, 1.0);
  EXPECT_TRUE(c.postnorm);
  EXPECT_EQ(c.num_softmax_layers(), 10);
  EXPECT_EQ(c.num_lightning_layers(), 70);
  EXPECT_EQ(c.layer_kinds[7], LayerKind::Softmax);
  EXPECT_EQ(c.layer_kinds[8], LayerKind::Lightning);
  EXPECT_EQ(c.layer_kinds[79], LayerKind::Softmax);
  EXPECT_EQ(c.bos_token_id, -1);  // null in the real config
  EXPECT_EQ(c.eos_token_id, -1);
  EXPECT_EQ(c.block_size, 256);   // not in M1's config: the code constant
  EXPECT_EQ(c.dtype, DType::BF16);
}

TEST(Config, TransformersFixture) {
  auto r = parse_config(hf_fixture_config(), "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelConfig& c = *r;
  EXPECT_EQ(c.format, ConfigFormat::HF);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rotary_dim, 16);  // the in-tree port rotates all of head_dim
  EXPECT_EQ(c.block_size, 16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e4);
  EXPECT_DOUBLE_EQ(c.full_attn_alpha, 3.5565588200778455);
  EXPECT_TRUE(c.postnorm);
  EXPECT_EQ(c.num_softmax_layers(), 1);
  EXPECT_EQ(c.layer_kinds[7], LayerKind::Softmax);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.dtype, DType::F32);  // v5 writes "dtype"
}

TEST(Config, HfDefaultsAndAlternatives) {
  json j = hf_fixture_config();
  j.erase("head_dim");
  j.erase("rope_parameters");
  j["rope_theta"] = 5e6;  // older exports keep it top-level
  j["eos_token_id"] = {7, 9};
  j["num_experts"] = j["num_local_experts"];
  j.erase("num_local_experts");
  j.erase("block_size");
  auto r = parse_config(j, "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->head_dim, 32 / 4);  // hidden / heads
  EXPECT_EQ(r->rotary_dim, r->head_dim);
  EXPECT_DOUBLE_EQ(r->rope_theta, 5e6);
  EXPECT_EQ(r->eos_token_id, 7);
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{7, 9}));
  EXPECT_EQ(r->num_local_experts, 4);
  EXPECT_EQ(r->block_size, 256);

  j.erase("layer_types");  // transformers' default: full attention on even layers
  r = parse_config(j, "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->layer_kinds[0], LayerKind::Softmax);
  EXPECT_EQ(r->layer_kinds[1], LayerKind::Lightning);
  EXPECT_EQ(r->num_softmax_layers(), 4);
}

TEST(Config, OriginalDefaults) {
  json j = m1_config();
  for (const char* k : {"head_dim", "rotary_dim", "layernorm_mlp_alpha", "postnorm", "num_key_value_heads",
                        "shared_intermediate_size", "torch_dtype"})
    j.erase(k);
  j["hidden_size"] = 8192;
  auto r = parse_config(j, "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->head_dim, 128);
  EXPECT_EQ(r->rotary_dim, 128);  // MiniMax's code: getattr(config, 'rotary_dim', head_dim)
  EXPECT_DOUBLE_EQ(r->mlp_alpha, 1.0);
  EXPECT_FALSE(r->postnorm);      // MiniMax's default
  EXPECT_EQ(r->num_key_value_heads, 64);
}

TEST(Config, MissingAndMistypedFields) {
  for (const char* k : {"hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                        "num_local_experts", "num_experts_per_tok"}) {
    json j = m1_config();
    j.erase(k);
    std::string e = parse_error(j);
    EXPECT_NE(e.find("/m/config.json"), std::string::npos) << e;
    EXPECT_NE(e.find(k), std::string::npos) << e;
    EXPECT_NE(e.find("missing"), std::string::npos) << e;
  }
  json j = m1_config();
  j["hidden_size"] = "6144";
  std::string e = parse_error(j);
  EXPECT_NE(e.find("'hidden_size' is a string"), std::string::npos) << e;
  j = m1_config();
  j["hidden_size"] = -1;
  EXPECT_NE(parse_error(j).find("positive"), std::string::npos);
  j = m1_config();
  j["rope_theta"] = "big";
  EXPECT_NE(parse_error(j).find("rope_theta"), std::string::npos);
  j = m1_config();
  j["postnorm"] = 1;
  EXPECT_NE(parse_error(j).find("postnorm"), std::string::npos);
  j = m1_config();
  j.erase("attn_type_list");
  EXPECT_NE(parse_error(j).find("attn_type_list"), std::string::npos);
  j = m1_config();
  j["torch_dtype"] = "float64";
  EXPECT_NE(parse_error(j).find("torch_dtype"), std::string::npos);
  EXPECT_NE(parse_error(json::array()).find("expected a JSON object"), std::string::npos);
}

TEST(Config, Consistency) {
  json j = m1_config();
  j["num_hidden_layers"] = 79;
  EXPECT_NE(parse_error(j).find("80 entries, expected num_hidden_layers = 79"), std::string::npos);
  j = m1_config();
  j["num_key_value_heads"] = 7;
  EXPECT_NE(parse_error(j).find("not divisible by num_key_value_heads"), std::string::npos);
  j = m1_config();
  j["rotary_dim"] = 63;
  EXPECT_NE(parse_error(j).find("rotary_dim = 63"), std::string::npos);
  j["rotary_dim"] = 256;
  EXPECT_NE(parse_error(j).find("head_dim = 128"), std::string::npos);
  j = m1_config();
  j["num_experts_per_tok"] = 33;
  EXPECT_NE(parse_error(j).find("exceeds num_local_experts"), std::string::npos);
  j = m1_config();
  j["shared_intermediate_size"] = 1024;
  EXPECT_NE(parse_error(j).find("not supported"), std::string::npos);
  j = m1_config();
  j["attn_type_list"][3] = 2;
  EXPECT_NE(parse_error(j).find("attn_type_list[3]"), std::string::npos);
  j = hf_fixture_config();
  j["layer_types"][2] = "sliding_attention";
  EXPECT_NE(parse_error(j).find("layer_types[2]"), std::string::npos);
  j = hf_fixture_config();
  j["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_NE(parse_error(j).find("not supported"), std::string::npos);
  j = m1_config();
  j.erase("head_dim");
  j["hidden_size"] = 6100;
  EXPECT_NE(parse_error(j).find("head_dim is absent"), std::string::npos);
}

TEST(Config, LoadConfigErrors) {
  fs::path dir = fs::temp_directory_path() / ("m1_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto r = load_config(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find((dir / "config.json").string()), std::string::npos);
  EXPECT_NE(r.error().message.find("no such file"), std::string::npos);
  std::ofstream(dir / "config.json") << "{ not json";
  r = load_config(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not valid JSON"), std::string::npos);
  std::ofstream(dir / "config.json") << m1_config().dump();
  r = load_config(dir / "config.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->hidden_size, 6144);
  fs::remove_all(dir);
}

TEST(Config, RoundTripBothFormats) {
  auto orig = parse_config(m1_config(), "config.json");
  ASSERT_TRUE(orig.ok());
  for (ConfigFormat f : {ConfigFormat::Original, ConfigFormat::HF}) {
    json j = config_to_json(*orig, f);
    auto back = parse_config(j, "config.json");
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->format, f);
    EXPECT_EQ(back->layer_kinds, orig->layer_kinds);
    EXPECT_EQ(back->rotary_dim, 64);
    EXPECT_EQ(back->head_dim, 128);
    EXPECT_DOUBLE_EQ(back->rope_theta, 1e7);
    EXPECT_DOUBLE_EQ(back->full_attn_alpha, orig->full_attn_alpha);
    EXPECT_EQ(back->postnorm, orig->postnorm);
    EXPECT_EQ(back->num_key_value_heads, 8);
    EXPECT_EQ(config_fingerprint(*back), config_fingerprint(*orig));
  }
  ModelConfig other = *orig;
  other.num_key_value_heads = 4;
  EXPECT_NE(config_fingerprint(other), config_fingerprint(*orig));
  json hf = config_to_json(*orig, ConfigFormat::HF);
  EXPECT_EQ(hf["model_type"], "minimax");
  EXPECT_EQ(hf["layer_types"][7], "full_attention");
  EXPECT_EQ(hf["rope_parameters"]["rope_theta"], 1e7);
  EXPECT_FALSE(hf.contains("attn_type_list"));
}
