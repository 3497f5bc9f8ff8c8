// Safetensors reader and writer: a written file reads back byte-exact through the memory map,
// and every kind of lying or broken header is refused with an error naming file and tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/safetensors.h"

#include "tests/engine/test_util.h"

using namespace m1::engine;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir : m1::test::TempDir {
  TempDir() : m1::test::TempDir("m1_st") {}
};

// A file made of a raw header JSON and `data_bytes` bytes of data.
std::vector<std::byte> raw_file(const json& header, size_t data_bytes) {
  std::string h = header.dump();
  std::vector<std::byte> f(8 + h.size() + data_bytes, std::byte{0x11});
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) f[size_t(i)] = std::byte((n >> (8 * i)) & 0xff);
  std::memcpy(f.data() + 8, h.data(), h.size());
  return f;
}

std::string header_error(const json& header, size_t data_bytes) {
  auto f = raw_file(header, data_bytes);
  auto r = parse_safetensors_header(f, "/x/model-00001-of-00002.safetensors");
  EXPECT_FALSE(r.ok()) << header.dump();
  return r.ok() ? "" : r.error().message;
}

json entry(const char* dt, std::vector<int64_t> shape, uint64_t b, uint64_t e) {
  return json{{"dtype", dt}, {"shape", shape}, {"data_offsets", {b, e}}};
}

using m1::test::has;

}  // namespace

TEST(Safetensors, WriteAndReadBack) {
  TempDir d;
  std::vector<TensorSpec> specs = {{"a.bf16", DType::BF16, {3, 5}},
                                   {"b.f32", DType::F32, {7}},
                                   {"c.f16", DType::F16, {2, 2, 3}},
                                   {"d.u8", DType::U8, {5}}};
  // Byte k of tensor i is (i * 31 + k) mod 251: distinct per tensor and position.
  TensorFiller fill = [](size_t i, uint64_t off, std::span<std::byte> out) {
    for (size_t k = 0; k < out.size(); ++k) out[k] = std::byte((i * 31 + off + k) % 251);
  };
  WriteOptions opt;
  opt.sync = false;
  std::vector<size_t> all = {0, 1, 2, 3};
  fs::path p = d.path / "model.safetensors";
  ASSERT_TRUE(write_safetensors(p, specs, all, fill, opt).ok());

  auto f = open_safetensors(p);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->header.data_offset % 8, 0u);
  EXPECT_EQ(f->header.metadata, json({{"format", "pt"}}));
  ASSERT_EQ(f->header.tensors.size(), 4u);
  for (const auto& e : f->header.tensors) {
    size_t i = size_t(e.name[0] - 'a');
    EXPECT_EQ(e.dtype, specs[i].dtype) << e.name;
    EXPECT_EQ(e.shape, specs[i].shape) << e.name;
    EXPECT_EQ(e.end - e.begin, specs[i].nbytes());
    EXPECT_EQ((f->header.data_offset + e.begin) % dtype_size(e.dtype), 0u) << "misaligned " << e.name;
    const std::byte* p0 = f->data(e);
    for (size_t k = 0; k < specs[i].nbytes(); ++k) ASSERT_EQ(p0[k], std::byte((i * 31 + k) % 251)) << e.name << k;
  }
  // Zero-copy: tensor bytes are inside the file's mapping.
  EXPECT_GE(f->data(f->header.tensors[0]), f->map->data());
  EXPECT_LT(f->data(f->header.tensors[0]), f->map->data() + f->map->size());
}

TEST(Safetensors, LargeTensorStreamsInChunks) {
  TempDir d;
  // 40 MB > the writer's 32 MB chunk: the filler must see increasing offsets.
  std::vector<TensorSpec> specs = {{"big", DType::F32, {10, 1000, 1000}}};
  std::vector<uint64_t> offsets;
  TensorFiller fill = [&](size_t, uint64_t off, std::span<std::byte> out) {
    offsets.push_back(off);
    for (size_t k = 0; k + 4 <= out.size(); k += 4) {
      float v = float((off + k) / 4);
      std::memcpy(out.data() + k, &v, 4);
    }
  };
  WriteOptions opt;
  opt.sync = false;
  std::vector<size_t> all = {0};
  ASSERT_TRUE(write_safetensors(d.path / "m.safetensors", specs, all, fill, opt).ok());
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_EQ(offsets[0], 0u);
  auto f = open_safetensors(d.path / "m.safetensors");
  ASSERT_TRUE(f.ok());
  const std::byte* p = f->data(f->header.tensors[0]);
  for (uint64_t i : {0ull, 1ull, 8388607ull, 8388608ull, 9999999ull}) {
    float v;
    std::memcpy(&v, p + i * 4, 4);
    EXPECT_EQ(v, float(i));
  }
}

TEST(Safetensors, ShardPlanAndIndex) {
  std::vector<TensorSpec> specs = {{"a", DType::F32, {100}},   // 400 B
                                   {"b", DType::F32, {100}},   // 400 B
                                   {"c", DType::F32, {300}},   // 1200 B: bigger than a shard
                                   {"d", DType::BF16, {10}}};  // 20 B
  auto plan = plan_shards(specs, 1000);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(plan[1], (std::vector<size_t>{2}));
  EXPECT_EQ(plan[2], (std::vector<size_t>{3}));
  EXPECT_EQ(shard_file_name(1, 3), "model-00001-of-00003.safetensors");
  EXPECT_EQ(shard_file_name(0, 413), "model-00000-of-00413.safetensors");

  TempDir d;
  WriteOptions opt;
  opt.sync = false;
  opt.shard_bytes = 1000;
  opt.first_shard_number = 0;
  uint64_t last_done = 0, last_total = 0;
  opt.progress = [&](uint64_t done, uint64_t total) { last_done = done; last_total = total; };
  TensorFiller fill = [](size_t, uint64_t, std::span<std::byte> out) { std::memset(out.data(), 0, out.size()); };
  auto files = write_checkpoint_tensors(d.path, specs, fill, opt);
  ASSERT_TRUE(files.ok()) << files.error().message;
  EXPECT_EQ(files->size(), 4u);
  EXPECT_EQ(last_done, 2020u);
  EXPECT_EQ(last_total, 2020u);
  std::ifstream in(d.path / "model.safetensors.index.json");
  json idx = json::parse(in);
  EXPECT_EQ(idx["metadata"]["total_size"], 2020);
  EXPECT_EQ(idx["weight_map"]["a"], "model-00000-of-00003.safetensors");
  EXPECT_EQ(idx["weight_map"]["c"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(idx["weight_map"]["d"], "model-00002-of-00003.safetensors");
  for (int s = 0; s < 3; ++s) EXPECT_TRUE(open_safetensors(d.path / shard_file_name(s, 3)).ok());

  // One shard: a single model.safetensors and no index, as transformers writes it.
  TempDir d2;
  opt.shard_bytes = 1 << 20;
  files = write_checkpoint_tensors(d2.path, specs, fill, opt);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(*files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(d2.path / "model.safetensors.index.json"));
}

TEST(Safetensors, ValidHandMadeHeader) {
  json h = {{"__metadata__", {{"format", "pt"}}}, {"w", entry("BF16", {2, 3}, 0, 12)}, {"s", entry("F8_E4M3", {4}, 12, 16)},
            {"empty", entry("F32", {0, 4}, 16, 16)}};
  auto f = raw_file(h, 16);
  auto r = parse_safetensors_header(f, "x.safetensors");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tensors.size(), 3u);
}

TEST(Safetensors, BadHeaders) {
  const std::string file = "/x/model-00001-of-00002.safetensors";
  // Offsets past the end of the data (a lying header or a truncated file).
  std::string e = header_error({{"w", entry("BF16", {2, 3}, 0, 12)}}, 10);
  EXPECT_TRUE(has(e, file) && has(e, "'w'") && has(e, "run past the end") && has(e, "10 bytes")) << e;
  // Overlapping tensors.
  e = header_error({{"a", entry("F32", {4}, 0, 16)}, {"b", entry("F32", {4}, 8, 24)}}, 24);
  EXPECT_TRUE(has(e, file) && has(e, "'a'") && has(e, "'b'") && has(e, "overlap")) << e;
  // Size != numel x dtype size.
  e = header_error({{"w", entry("F32", {2, 3}, 0, 12)}}, 24);
  EXPECT_TRUE(has(e, "'w'") && has(e, "span 12 bytes") && has(e, "F32 x [2, 3] needs 24")) << e;
  // Unknown dtype.
  e = header_error({{"w", entry("F64", {2}, 0, 16)}}, 16);
  EXPECT_TRUE(has(e, file) && has(e, "'w'") && has(e, "unknown dtype \"F64\"") && has(e, "BF16")) << e;
  // end < begin.
  e = header_error({{"w", entry("U8", {0}, 8, 4)}}, 16);
  EXPECT_TRUE(has(e, "end before they begin")) << e;
  // Malformed entries.
  e = header_error({{"w", {{"dtype", "F32"}, {"shape", {2}}}}}, 8);
  EXPECT_TRUE(has(e, "'w'") && has(e, "data_offsets")) << e;
  e = header_error({{"w", {{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}}}, 8);
  EXPECT_TRUE(has(e, "non-negative")) << e;
  e = header_error({{"w", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0}}}}}, 8);
  EXPECT_TRUE(has(e, "[begin, end]")) << e;
  e = header_error(json::array({1, 2}), 0);
  EXPECT_TRUE(has(e, "not a JSON object")) << e;
}

TEST(Safetensors, TruncatedFiles) {
  json h = {{"w", entry("F32", {4}, 0, 16)}};
  auto f = raw_file(h, 16);
  // Too short for the length field.
  auto r = parse_safetensors_header(std::span(f.data(), 5), "t.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "t.safetensors") && has(r.error().message, "truncated"));
  // Cut inside the header.
  r = parse_safetensors_header(std::span(f.data(), 20), "t.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "header length says")) << r.error().message;
  // Cut inside the data.
  r = parse_safetensors_header(std::span(f.data(), f.size() - 1), "t.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "'w'") && has(r.error().message, "truncated file?")) << r.error().message;
  // Absurd header length (not a safetensors file).
  std::vector<std::byte> junk(64, std::byte{0xff});
  r = parse_safetensors_header(junk, "junk.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "junk.bin")) << r.error().message;
}

TEST(Safetensors, OpenErrors) {
  TempDir d;
  auto r = open_safetensors(d.path / "nope.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "nope.safetensors") && has(r.error().message, "no such file"));
  std::ofstream(d.path / "empty.safetensors").close();
  r = open_safetensors(d.path / "empty.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "truncated")) << r.error().message;
  r = open_safetensors(d.path);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "not a regular file")) << r.error().message;
}
