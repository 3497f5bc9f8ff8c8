// `m1 model init` as a library call: round trip init -> open -> bind_weights -> values equal what
// was written (both formats, sharded, bf16/fp16/fp32), determinism, the generator's
// distribution, preset shapes and sizes, the disk-space refusal and the atomic folder swap.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/model_init.h"

#include "tests/engine/test_util.h"

using namespace m1::engine;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir : m1::test::TempDir {
  TempDir() : m1::test::TempDir("m1_mi") {}
};

using m1::test::has;

float stored(DType dt, float v) {
  if (dt == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (dt == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> r;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (has(n, ".tmp-") || has(n, ".old-")) r.push_back(n);
  }
  return r;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(ModelInit, RoundTripFormatsAndDtypes) {
  for (ConfigFormat fmt : {ConfigFormat::Original, ConfigFormat::HF}) {
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      SCOPED_TRACE(std::string(fmt == ConfigFormat::HF ? "hf " : "original ") + std::string(dtype_name(dt)));
      TempDir d;
      InitOptions o;
      o.out = d.path / "model";
      o.seed = 42;
      o.format = fmt;
      o.dtype = dt;
      o.shard_bytes = 1'000'000;
      o.sync = false;
      auto r = init_model(o);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_TRUE(fs::exists(o.out / "config.json"));
      EXPECT_TRUE(fs::exists(o.out / "model.safetensors.index.json"));
      // Shards numbered like the originals: MiniMax's from 00000, transformers' from 00001.
      json index = json::parse(std::ifstream(o.out / "model.safetensors.index.json"));
      const std::string first = index["weight_map"]["model.embed_tokens.weight"];
      EXPECT_EQ(first.substr(0, 12), fmt == ConfigFormat::HF ? "model-00001-" : "model-00000-") << first;
      EXPECT_GE(r->files.size(), 5u);  // config.json, index, >= 3 shards
      EXPECT_TRUE(leftovers(d.path).empty());

      auto ck = Checkpoint::open(o.out);
      ASSERT_TRUE(ck.ok()) << ck.error().message;
      const ModelConfig& c = (*ck)->config();
      EXPECT_EQ(c.format, fmt);
      EXPECT_EQ(c.dtype, dt);
      EXPECT_EQ(c.num_hidden_layers, 8);
      EXPECT_EQ(c.num_softmax_layers(), 1);
      EXPECT_EQ(c.layer_kinds[7], LayerKind::Softmax);
      EXPECT_EQ(c.num_key_value_heads, 2);
      EXPECT_EQ(c.rotary_dim, fmt == ConfigFormat::HF ? 16 : 8);
      EXPECT_EQ(c.vocab_size, 200064);
      EXPECT_EQ((*ck)->total_bytes(), r->tensor_bytes);

      auto w = bind_weights(**ck);
      ASSERT_TRUE(w.ok()) << w.error().message;
      EXPECT_EQ(w->embed.dtype, dt);
      for (int64_t i : {int64_t(0), int64_t(1), int64_t(200000 * 32 + 5), int64_t(200064 * 32 - 1)}) {
        EXPECT_EQ(w->embed.at(i), stored(dt, init_value(42, "model.embed_tokens.weight", uint64_t(i))));
        EXPECT_EQ(w->lm_head.at(i), stored(dt, init_value(42, "lm_head.weight", uint64_t(i))));
      }
      const LayerWeights& s = w->layers[7];
      const LayerWeights& l = w->layers[3];
      for (int64_t i : {0, 3, 511}) {
        EXPECT_EQ(s.q.at(i), stored(dt, init_value(42, "model.layers.7.self_attn.q_proj.weight", uint64_t(i))));
        EXPECT_EQ(l.qkv.at(i), stored(dt, init_value(42, "model.layers.3.self_attn.qkv_proj.weight", uint64_t(i))));
      }
      const std::string router = fmt == ConfigFormat::HF ? "model.layers.3.mlp.gate.weight"
                                                         : "model.layers.3.block_sparse_moe.gate.weight";
      EXPECT_EQ(l.router.dtype, DType::F32);
      EXPECT_EQ(l.router.at(9), init_value(42, router, 9));
      const int64_t I = 64, H = 32;
      if (fmt == ConfigFormat::HF) {
        EXPECT_EQ(l.w3[2].at(7), stored(dt, init_value(42, "model.layers.3.mlp.experts.gate_up_proj",
                                                       uint64_t(2 * 2 * I * H + I * H + 7))));
      } else {
        EXPECT_EQ(l.w3[2].at(7), stored(dt, init_value(42, "model.layers.3.block_sparse_moe.experts.2.w3.weight", 7)));
      }
      EXPECT_EQ(l.input_norm.at(31), 1.0f);
      EXPECT_EQ(l.attn_norm.at(63), 1.0f);
      EXPECT_EQ(w->final_norm.at(0), 1.0f);
    }
  }
}

TEST(ModelInit, TinyDefaultIsFastAndSynced) {
  TempDir d;
  InitOptions o;
  o.out = d.path / "t";
  auto t0 = std::chrono::steady_clock::now();
  auto r = init_model(o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::printf("tiny init (bf16, fsync): %.3f s, %llu bytes of weights, %zu files\n", s,
              (unsigned long long)r->tensor_bytes, r->files.size());
  EXPECT_LT(s, 5.0);
  EXPECT_LT(r->tensor_bytes, 30'000'000u);
  auto ck = Checkpoint::open(o.out);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  EXPECT_TRUE(bind_weights(**ck).ok());
  // The project's tokenizer, with M1's special tokens at their real ids.
  ASSERT_TRUE(fs::exists(o.out / "tokenizer_config.json"));
  json tok = json::parse(std::ifstream(o.out / "tokenizer.json"));
  bool eos = false;
  for (const auto& t : tok["added_tokens"]) eos |= t["id"] == 200020 && t["content"] == "<end_of_sentence>";
  EXPECT_TRUE(eos);
}

TEST(ModelInit, DeterministicPerSeed) {
  TempDir d;
  auto make = [&](const char* name, uint64_t seed) {
    InitOptions o;
    o.out = d.path / name;
    o.seed = seed;
    o.sync = false;
    o.layers = 2;
    o.shard_bytes = 100'000'000;
    auto r = init_model(o);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return slurp(o.out / "model.safetensors");
  };
  std::string a = make("a", 7), b = make("b", 7), c = make("c", 8);
  EXPECT_GT(a.size(), 1'000'000u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
}

TEST(ModelInit, NormalDistribution) {
  const int n = 2'000'000;
  double sum = 0, sq = 0, maxabs = 0;
  int within1 = 0, within2 = 0;
  for (int i = 0; i < n; ++i) {
    double v = init_value(3, "w", uint64_t(i));
    sum += v;
    sq += v * v;
    maxabs = std::max(maxabs, std::fabs(v));
    within1 += std::fabs(v) < 0.02;
    within2 += std::fabs(v) < 0.04;
  }
  double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_LT(std::fabs(mean), 1e-4);
  EXPECT_NEAR(sd, 0.02, 0.0002);
  EXPECT_NEAR(double(within1) / n, 0.6827, 0.003);
  EXPECT_NEAR(double(within2) / n, 0.9545, 0.002);
  EXPECT_LT(maxabs, 0.1);
  EXPECT_GT(maxabs, 0.07);  // tails exist (beyond 3.5 sigma)
  // Different tensors draw different streams.
  EXPECT_NE(init_value(3, "w", 0), init_value(3, "v", 0));
  EXPECT_EQ(init_value(3, "model.norm.weight", 5), 1.0f);
}

TEST(ModelInit, PresetShapesAndSizes) {
  auto kinds = [](int64_t layers) {
    std::string s;
    ModelConfig c = preset_config("tiny", layers).value();
    for (auto k : c.layer_kinds) s += k == LayerKind::Softmax ? 'S' : 'L';
    return s;
  };
  EXPECT_EQ(kinds(0), "LLLLLLLS");
  EXPECT_EQ(kinds(3), "LLS");
  EXPECT_EQ(kinds(1), "S");
  EXPECT_EQ(kinds(12), "LLLLLLLSLLLL");
  EXPECT_EQ(kinds(16), "LLLLLLLSLLLLLLLS");
  EXPECT_FALSE(preset_config("huge").ok());

  auto bytes = [](const char* preset) {
    ModelConfig c = preset_config(preset).value();
    uint64_t b = 0, params = 0;
    for (const auto& t : model_tensors(c, ConfigFormat::Original, DType::BF16)) {
      b += t.nbytes();
      params += t.numel();
    }
    return std::make_pair(b, params);
  };
  auto [block_bytes, block_params] = bytes("m1-block");
  EXPECT_NEAR(double(block_params), 47.8e9, 0.05e9);  // performance.md: 47.8 B parameters
  EXPECT_NEAR(double(block_bytes), 95.6e9, 0.1e9);     // 95.6 GB
  auto [m1_bytes, m1_params] = bytes("m1");
  EXPECT_NEAR(double(m1_params), 456.09e9, 0.1e9);     // m1-model.md: 456.09 B
  EXPECT_NEAR(double(m1_bytes), 912.2e9, 0.2e9);
  ModelConfig m1 = preset_config("m1").value();
  EXPECT_EQ(m1.num_softmax_layers(), 10);
  EXPECT_EQ(m1.rotary_dim, 64);
  // Original and HF layouts hold the same bytes.
  uint64_t hf = 0;
  for (const auto& t : model_tensors(m1, ConfigFormat::HF, DType::BF16)) hf += t.nbytes();
  EXPECT_EQ(hf, m1_bytes);
}

TEST(ModelInit, RefusesWhenDiskIsTooSmall) {
  TempDir d;
  InitOptions o;
  o.preset = "m1-block";
  o.out = d.path / "big";
  o.assume_free_bytes = 10'000'000'000ull;
  auto r = init_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "95.") && has(r.error().message, "10.0 GB") && has(r.error().message, "free"))
      << r.error().message;
  EXPECT_FALSE(fs::exists(o.out));
  EXPECT_TRUE(fs::is_empty(d.path));
  EXPECT_TRUE(check_disk_space(100, 1ull << 30, "/x").ok());
  EXPECT_FALSE(check_disk_space(1ull << 30, 1ull << 30, "/x").ok());  // no margin left
}

TEST(ModelInit, ExistingFolderAndForce) {
  TempDir d;
  InitOptions o;
  o.out = d.path / "m";
  o.layers = 1;
  o.sync = false;
  fs::create_directories(o.out);  // an empty folder is fine
  ASSERT_TRUE(init_model(o).ok());
  std::ofstream(o.out / "marker") << "x";
  auto r = init_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "already exists") && has(r.error().message, "--force"));
  EXPECT_TRUE(fs::exists(o.out / "marker"));
  o.force = true;
  o.seed = 5;
  ASSERT_TRUE(init_model(o).ok());
  EXPECT_FALSE(fs::exists(o.out / "marker"));
  EXPECT_TRUE(leftovers(d.path).empty());
  auto ck = Checkpoint::open(o.out);
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ((*ck)->find("model.embed_tokens.weight")->at(0),
            stored(DType::BF16, init_value(5, "model.embed_tokens.weight", 0)));
}

TEST(ModelInit, ByteSizes) {
  EXPECT_EQ(parse_byte_size("64MB").value(), 64'000'000u);
  EXPECT_EQ(parse_byte_size("2GB").value(), 2'000'000'000u);
  EXPECT_EQ(parse_byte_size("512MiB").value(), 512u << 20);
  EXPECT_EQ(parse_byte_size("1.5GiB").value(), 3ull << 29);
  EXPECT_EQ(parse_byte_size("4096").value(), 4096u);
  EXPECT_EQ(parse_byte_size("8 kb").value(), 8000u);
  for (const char* bad : {"", "MB", "12XB", "-5MB", "0", "1e30GB"}) {
    auto r = parse_byte_size(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, 2);
  }
  EXPECT_EQ(format_bytes(95'600'000'000ull), "95.6 GB");
  EXPECT_EQ(format_bytes(512), "512 B");
}

TEST(ModelInit, CustomConfig) {
  TempDir d;
  ModelConfig c = preset_config("tiny").value();
  c.num_attention_heads = 6;  // not a power of two
  c.num_key_value_heads = 3;
  c.vocab_size = 1000;
  InitOptions o;
  o.out = d.path / "c";
  o.config = c;
  o.sync = false;
  auto r = init_model(o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto ck = Checkpoint::open(o.out);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  EXPECT_EQ((*ck)->config().num_attention_heads, 6);
  auto w = bind_weights(**ck);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ(w->layers[7].k.shape, (std::vector<int64_t>{3 * 16, 32}));
  c.num_key_value_heads = 4;  // 6 % 4 != 0: refused before anything is written
  o.config = c;
  o.out = d.path / "bad";
  r = init_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "num_key_value_heads")) << r.error().message;
  EXPECT_FALSE(fs::exists(o.out));
}
