// Checkpoint::open + bind_weights: both MoE layouts, tied embeddings, F8 weights with their
// scales, transformers-written parity fixtures, and one clear error for each kind of broken
// model folder (missing file/tensor, truncated shard, lying index, wrong shape or dtype).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/model_init.h"
#include "engine/safetensors.h"

#include "tests/engine/test_util.h"

using namespace m1::engine;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir : m1::test::TempDir {
  TempDir() : m1::test::TempDir("m1_ck") {}
};

using m1::test::has;

// tiny's shape with 2 layers (lightning + softmax) and a 64-token vocabulary: quick to write.
ModelConfig small_config() {
  ModelConfig c = preset_config("tiny", 2).value();
  c.vocab_size = 64;
  return c;
}

float stored(DType dt, float v) {
  if (dt == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (dt == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

// Writes config.json and the tensors (values from init_value with seed 1; F8 codes k % 0x7e).
void write_folder(const fs::path& dir, const ModelConfig& c, ConfigFormat fmt, const std::vector<TensorSpec>& specs,
                  uint64_t shard_bytes = 1 << 30) {
  std::ofstream(dir / "config.json") << config_to_json(c, fmt).dump(2);
  TensorFiller fill = [&](size_t i, uint64_t off, std::span<std::byte> out) {
    const TensorSpec& t = specs[i];
    const size_t esz = dtype_size(t.dtype);
    for (size_t k = 0; k < out.size() / esz; ++k) {
      uint64_t e = off / esz + k;
      float v = init_value(1, t.name, e);
      std::byte* p = out.data() + k * esz;
      if (t.dtype == DType::BF16) { uint16_t h = f32_to_bf16(v); std::memcpy(p, &h, 2); }
      else if (t.dtype == DType::F16) { uint16_t h = f32_to_f16(v); std::memcpy(p, &h, 2); }
      else if (t.dtype == DType::F32) std::memcpy(p, &v, 4);
      else if (t.dtype == DType::F8_E4M3) *p = std::byte(e % 0x7e);
      else std::memset(p, 0, esz);
    }
  };
  WriteOptions o;
  o.sync = false;
  o.shard_bytes = shard_bytes;
  auto r = write_checkpoint_tensors(dir, specs, fill, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
}

std::string open_error(const fs::path& dir) {
  auto ck = Checkpoint::open(dir);
  EXPECT_FALSE(ck.ok());
  return ck.ok() ? "" : ck.error().message;
}

std::string bind_error(const fs::path& dir) {
  auto ck = Checkpoint::open(dir);
  EXPECT_TRUE(ck.ok()) << ck.error().message;
  if (!ck.ok()) return "";
  auto w = bind_weights(**ck);
  EXPECT_FALSE(w.ok());
  return w.ok() ? "" : w.error().message;
}

std::vector<TensorSpec> without(std::vector<TensorSpec> s, const std::string& name) {
  std::erase_if(s, [&](const TensorSpec& t) { return t.name == name; });
  return s;
}

}  // namespace

TEST(Checkpoint, PerExpertLayout) {
  TempDir d;
  ModelConfig c = small_config();
  auto specs = model_tensors(c, ConfigFormat::Original, DType::BF16);
  write_folder(d.path, c, ConfigFormat::Original, specs, 20000);  // several shards
  auto ck = Checkpoint::open(d.path);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  EXPECT_GT((*ck)->num_files(), 2u);
  EXPECT_EQ((*ck)->names().size(), specs.size());
  uint64_t bytes = 0;
  for (const auto& s : specs) bytes += s.nbytes();
  EXPECT_EQ((*ck)->total_bytes(), bytes);
  EXPECT_EQ((*ck)->find("nope"), nullptr);

  auto w = bind_weights(**ck);
  ASSERT_TRUE(w.ok()) << w.error().message;
  ASSERT_EQ(w->layers.size(), 2u);
  EXPECT_EQ(w->layers[0].kind, LayerKind::Lightning);
  EXPECT_EQ(w->layers[1].kind, LayerKind::Softmax);
  EXPECT_FALSE(w->layers[0].stacked_experts);
  const auto& L = w->layers[1];
  ASSERT_EQ(L.w1.size(), 4u);
  EXPECT_EQ(L.w2[3].shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(L.router.dtype, DType::F32);
  EXPECT_EQ(L.k.shape, (std::vector<int64_t>{2 * 16, 32}));
  EXPECT_EQ(w->layers[0].qkv.shape, (std::vector<int64_t>{3 * 4 * 16, 32}));
  for (int64_t i : {0, 1, 17, 2047}) {
    EXPECT_EQ(L.w1[2].at(i), stored(DType::BF16, init_value(1, "model.layers.1.block_sparse_moe.experts.2.w1.weight", i)));
    EXPECT_EQ(L.w3[0].at(i), stored(DType::BF16, init_value(1, "model.layers.1.block_sparse_moe.experts.0.w3.weight", i)));
    EXPECT_EQ(L.w2[3].at(i), stored(DType::BF16, init_value(1, "model.layers.1.block_sparse_moe.experts.3.w2.weight", i)));
  }
  EXPECT_EQ(L.router.at(5), init_value(1, "model.layers.1.block_sparse_moe.gate.weight", 5));
  EXPECT_EQ(w->final_norm.at(3), 1.0f);
  EXPECT_NE(w->lm_head.data, w->embed.data);
}

TEST(Checkpoint, StackedLayoutGivesPerExpertViews) {
  TempDir d;
  ModelConfig c = small_config();
  auto specs = model_tensors(c, ConfigFormat::HF, DType::F16);
  write_folder(d.path, c, ConfigFormat::HF, specs);
  auto ck = Checkpoint::open(d.path);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  EXPECT_EQ((*ck)->config().format, ConfigFormat::HF);
  auto w = bind_weights(**ck);
  ASSERT_TRUE(w.ok()) << w.error().message;
  const int64_t E = 4, I = 64, H = 32;
  for (int l = 0; l < 2; ++l) {
    const auto& L = w->layers[size_t(l)];
    EXPECT_TRUE(L.stacked_experts);
    const std::string gu = "model.layers." + std::to_string(l) + ".mlp.experts.gate_up_proj";
    const std::string dn = "model.layers." + std::to_string(l) + ".mlp.experts.down_proj";
    ASSERT_EQ(int64_t(L.w1.size()), E);
    for (int64_t e = 0; e < E; ++e) {
      EXPECT_EQ(L.w1[size_t(e)].shape, (std::vector<int64_t>{I, H}));
      EXPECT_EQ(L.w3[size_t(e)].shape, (std::vector<int64_t>{I, H}));
      EXPECT_EQ(L.w2[size_t(e)].shape, (std::vector<int64_t>{H, I}));
      EXPECT_EQ(L.w1[size_t(e)].nbytes, size_t(I * H * 2));
      for (int64_t k : {int64_t(0), int64_t(1), I * H - 1}) {
        // gate_up_proj[e] rows 0..I-1 are w1 (gate), rows I..2I-1 are w3 (up).
        EXPECT_EQ(L.w1[size_t(e)].at(k), stored(DType::F16, init_value(1, gu, uint64_t(e * 2 * I * H + k))));
        EXPECT_EQ(L.w3[size_t(e)].at(k), stored(DType::F16, init_value(1, gu, uint64_t(e * 2 * I * H + I * H + k))));
        EXPECT_EQ(L.w2[size_t(e)].at(k), stored(DType::F16, init_value(1, dn, uint64_t(e * H * I + k))));
      }
    }
    EXPECT_EQ(L.router.at(7), init_value(1, "model.layers." + std::to_string(l) + ".mlp.gate.weight", 7));
  }
}

TEST(Checkpoint, TiedEmbeddings) {
  TempDir d;
  ModelConfig c = small_config();
  c.tie_word_embeddings = true;
  auto specs = model_tensors(c, ConfigFormat::Original, DType::F32);
  ASSERT_EQ(std::count_if(specs.begin(), specs.end(), [](auto& t) { return t.name == "lm_head.weight"; }), 0);
  write_folder(d.path, c, ConfigFormat::Original, specs);
  auto ck = Checkpoint::open(d.path);
  ASSERT_TRUE(ck.ok());
  auto w = bind_weights(**ck);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ(w->lm_head.data, w->embed.data);
}

TEST(Checkpoint, F8WeightsAndScales) {
  TempDir d;
  ModelConfig c = small_config();
  auto specs = model_tensors(c, ConfigFormat::Original, DType::BF16);
  std::vector<TensorSpec> extra;
  for (auto& t : specs) {
    if (t.name.find(".experts.") == std::string::npos) continue;
    t.dtype = DType::F8_E4M3;
    // Block scales (128 x 128 blocks) under DeepSeek's name for w1/w3, a per-tensor scale for w2.
    bool w2 = t.name.find(".w2.") != std::string::npos;
    extra.push_back({t.name + (w2 ? "_scale" : "_scale_inv"), DType::F32, w2 ? std::vector<int64_t>{1}
                                                                             : std::vector<int64_t>{1, 1}});
  }
  specs.insert(specs.end(), extra.begin(), extra.end());
  write_folder(d.path, c, ConfigFormat::Original, specs);
  auto ck = Checkpoint::open(d.path);
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  auto w = bind_weights(**ck);
  ASSERT_TRUE(w.ok()) << w.error().message;
  const TensorView& w1 = w->layers[0].w1[1];
  EXPECT_EQ(w1.dtype, DType::F8_E4M3);
  ASSERT_NE(w1.scale, nullptr);
  EXPECT_EQ(w1.scale->name, "model.layers.0.block_sparse_moe.experts.1.w1.weight_scale_inv");
  ASSERT_NE(w->layers[0].w2[0].scale, nullptr);
  EXPECT_EQ(w->layers[0].w2[0].scale->name, "model.layers.0.block_sparse_moe.experts.0.w2.weight_scale");
  EXPECT_EQ(w->layers[0].qkv.scale, nullptr);
  for (int64_t k : {0, 5, 56, 125, 126, 300})
    EXPECT_EQ(w1.at(k), f8e4m3_to_f32(uint8_t(k % 0x7e))) << k;
}

TEST(Checkpoint, TransformersFixtures) {
  const fs::path root = fs::path(M1_SOURCE_DIR) / "tests/fixtures/parity";
  int n = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!fs::exists(e.path() / "hf/config.json")) continue;
    ++n;
    auto hf = Checkpoint::open(e.path() / "hf");
    auto orig = Checkpoint::open(e.path() / "orig");
    ASSERT_TRUE(hf.ok()) << hf.error().message;
    ASSERT_TRUE(orig.ok()) << orig.error().message;
    EXPECT_EQ((*hf)->config().format, ConfigFormat::HF);
    EXPECT_EQ((*orig)->config().format, ConfigFormat::Original);
    EXPECT_EQ(config_fingerprint((*hf)->config()), config_fingerprint((*orig)->config())) << e.path();
    auto wh = bind_weights(**hf);
    auto wo = bind_weights(**orig);
    ASSERT_TRUE(wh.ok()) << wh.error().message;
    ASSERT_TRUE(wo.ok()) << wo.error().message;
    for (const auto& name : (*orig)->names()) {
      const TensorView* a = (*orig)->find(name);
      const TensorView* b = (*hf)->find(name);
      ASSERT_NE(b, nullptr) << name;
      ASSERT_EQ(a->shape, b->shape) << name;
      ASSERT_EQ(0, std::memcmp(a->data, b->data, a->nbytes)) << name;
    }
  }
  EXPECT_GE(n, 1);
}

// ---------------------------------------------------------------- broken folders

TEST(CheckpointErrors, MissingFolderAndFiles) {
  TempDir d;
  std::string e = open_error(d.path / "absent");
  EXPECT_TRUE(has(e, "absent") && has(e, "no such directory")) << e;
  e = open_error(d.path);
  EXPECT_TRUE(has(e, (d.path / "config.json").string()) && has(e, "no such file")) << e;
  std::ofstream(d.path / "config.json") << config_to_json(small_config(), ConfigFormat::Original).dump();
  e = open_error(d.path);
  EXPECT_TRUE(has(e, "no model.safetensors.index.json or model.safetensors")) << e;
}

TEST(CheckpointErrors, ConfigMissingField) {
  TempDir d;
  ModelConfig c = small_config();
  write_folder(d.path, c, ConfigFormat::Original, model_tensors(c, ConfigFormat::Original, DType::BF16));
  json j = config_to_json(c, ConfigFormat::Original);
  j.erase("num_attention_heads");
  std::ofstream(d.path / "config.json") << j.dump();
  std::string e = open_error(d.path);
  EXPECT_TRUE(has(e, "config.json") && has(e, "num_attention_heads") && has(e, "missing")) << e;
}

TEST(CheckpointErrors, MissingShardAndLyingIndex) {
  TempDir d;
  ModelConfig c = small_config();
  write_folder(d.path, c, ConfigFormat::Original, model_tensors(c, ConfigFormat::Original, DType::BF16), 20000);
  const fs::path idx = d.path / "model.safetensors.index.json";
  json index = json::parse(std::ifstream(idx));
  const std::string shard = index["weight_map"]["model.norm.weight"];

  // Shard file deleted.
  fs::rename(d.path / shard, d.path / "moved");
  std::string e = open_error(d.path);
  EXPECT_TRUE(has(e, "model.safetensors.index.json") && has(e, shard) && has(e, "does not exist")) << e;
  fs::rename(d.path / "moved", d.path / shard);

  // Index points at a file that does not exist.
  json bad = index;
  bad["weight_map"]["model.norm.weight"] = "model-99999-of-00003.safetensors";
  std::ofstream(idx) << bad.dump();
  e = open_error(d.path);
  EXPECT_TRUE(has(e, "'model.norm.weight'") && has(e, "model-99999-of-00003.safetensors") && has(e, "does not exist")) << e;

  // Index points at a real shard that lacks the tensor.
  bad = index;
  std::string other = index["weight_map"]["model.embed_tokens.weight"];
  ASSERT_NE(other, shard);
  bad["weight_map"]["model.norm.weight"] = other;
  std::ofstream(idx) << bad.dump();
  e = open_error(d.path);
  EXPECT_TRUE(has(e, "'model.norm.weight'") && has(e, other) && has(e, "no tensor of that name")) << e;

  // Paths out of the folder, malformed index.
  bad = index;
  bad["weight_map"]["model.norm.weight"] = "../" + shard;
  std::ofstream(idx) << bad.dump();
  EXPECT_TRUE(has(open_error(d.path), "outside the model folder"));
  std::ofstream(idx) << "{\"metadata\": {}}";
  EXPECT_TRUE(has(open_error(d.path), "weight_map"));
  std::ofstream(idx) << "{";
  EXPECT_TRUE(has(open_error(d.path), "not a valid JSON object"));
}

TEST(CheckpointErrors, TruncatedShard) {
  TempDir d;
  ModelConfig c = small_config();
  write_folder(d.path, c, ConfigFormat::Original, model_tensors(c, ConfigFormat::Original, DType::BF16), 20000);
  json index = json::parse(std::ifstream(d.path / "model.safetensors.index.json"));
  const std::string shard = index["weight_map"]["lm_head.weight"];
  fs::resize_file(d.path / shard, fs::file_size(d.path / shard) - 100);
  std::string e = open_error(d.path);
  EXPECT_TRUE(has(e, shard) && has(e, "'lm_head.weight'") && has(e, "run past the end") && has(e, "truncated")) << e;
  // Cut to a few bytes: even the header is gone.
  fs::resize_file(d.path / shard, 4);
  e = open_error(d.path);
  EXPECT_TRUE(has(e, shard) && has(e, "truncated")) << e;
}

TEST(CheckpointErrors, MissingTensor) {
  TempDir d;
  ModelConfig c = small_config();
  const std::string name = "model.layers.1.self_attn.k_proj.weight";
  write_folder(d.path, c, ConfigFormat::Original, without(model_tensors(c, ConfigFormat::Original, DType::BF16), name));
  std::string e = bind_error(d.path);
  EXPECT_TRUE(has(e, "'" + name + "'") && has(e, "missing") && has(e, "[32, 32]") && has(e, "model.safetensors")) << e;

  TempDir d2;
  write_folder(d2.path, c, ConfigFormat::Original,
               without(model_tensors(c, ConfigFormat::Original, DType::BF16), "model.layers.0.block_sparse_moe.experts.2.w3.weight"));
  e = bind_error(d2.path);
  EXPECT_TRUE(has(e, "experts.2.w3.weight") && has(e, "[64, 32]")) << e;

  TempDir d3;
  auto specs = model_tensors(c, ConfigFormat::HF, DType::BF16);
  specs = without(without(specs, "model.layers.1.mlp.experts.gate_up_proj"), "model.layers.1.mlp.experts.down_proj");
  write_folder(d3.path, c, ConfigFormat::HF, specs);
  e = bind_error(d3.path);
  EXPECT_TRUE(has(e, "model.layers.1.") && has(e, "experts.0.w1.weight") && has(e, "gate_up_proj")) << e;

  TempDir d4;
  write_folder(d4.path, c, ConfigFormat::Original, without(model_tensors(c, ConfigFormat::Original, DType::BF16), "lm_head.weight"));
  e = bind_error(d4.path);
  EXPECT_TRUE(has(e, "'lm_head.weight'") && has(e, "[64, 32]")) << e;
}

TEST(CheckpointErrors, WrongShapeOrDtype) {
  TempDir d;
  ModelConfig c = small_config();
  auto specs = model_tensors(c, ConfigFormat::Original, DType::BF16);
  for (auto& t : specs)
    if (t.name == "model.layers.0.self_attn.qkv_proj.weight") t.shape = {64 * 3, 16};
  write_folder(d.path, c, ConfigFormat::Original, specs);
  std::string e = bind_error(d.path);
  EXPECT_TRUE(has(e, "'model.layers.0.self_attn.qkv_proj.weight'") && has(e, "model.safetensors") &&
              has(e, "has shape [192, 16], expected [192, 32]")) << e;

  TempDir d2;
  specs = model_tensors(c, ConfigFormat::HF, DType::BF16);
  for (auto& t : specs)
    if (t.name == "model.layers.0.mlp.experts.down_proj") t.shape = {4, 64, 32};  // transposed experts
  write_folder(d2.path, c, ConfigFormat::HF, specs);
  e = bind_error(d2.path);
  EXPECT_TRUE(has(e, "down_proj") && has(e, "[4, 64, 32], expected [4, 32, 64]")) << e;

  TempDir d3;
  specs = model_tensors(c, ConfigFormat::Original, DType::BF16);
  for (auto& t : specs)
    if (t.name == "model.norm.weight") t.dtype = DType::I32;
  write_folder(d3.path, c, ConfigFormat::Original, specs);
  e = bind_error(d3.path);
  EXPECT_TRUE(has(e, "'model.norm.weight'") && has(e, "dtype I32") && has(e, "floating-point")) << e;
}

TEST(CheckpointErrors, GetNamesExpectation) {
  TempDir d;
  ModelConfig c = small_config();
  write_folder(d.path, c, ConfigFormat::Original, model_tensors(c, ConfigFormat::Original, DType::BF16));
  auto ck = Checkpoint::open(d.path);
  ASSERT_TRUE(ck.ok());
  const int64_t ok[] = {32}, bad[] = {33};
  EXPECT_TRUE((*ck)->get("model.norm.weight", ok).ok());
  auto r = (*ck)->get("model.norm.weight", bad);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "has shape [32], expected [33]"));
}
