// Engine facade: a `model init --preset tiny` folder opens and streams generated text; bad folders
// get clear errors (missing, no config, tokenizer larger than the model's vocabulary, unknown
// device); trailing all-zero embedding rows are never sampled.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/model_init.h"
#include "engine/tokenizer.h"

using namespace m1::engine;
namespace fs = std::filesystem;

namespace {

const fs::path kFix = fs::path(M1_SOURCE_DIR) / "tests/fixtures/parity";

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("m1_test_model_engine_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p;
}

std::string open_error(const fs::path& dir, EngineOptions o = {}) {
  auto r = Engine::open(dir, o);
  return r.ok() ? "opened" : r.error().message;
}

TEST(Engine, TinyPresetStreamsTokens) {
  InitOptions io;
  io.out = scratch("tiny");
  io.sync = false;
  ASSERT_TRUE(init_model(io).ok());
  auto e = Engine::open(io.out);
  ASSERT_TRUE(e.ok()) << e.error().message;
  auto& eng = *e.value();
  EXPECT_EQ(eng.usable_vocab(), eng.tokenizer().vocab_size());
  auto s = eng.new_session().value();
  ASSERT_TRUE(s->append(eng.tokenizer().encode("Hello, world")).ok());
  GenerateOptions go;
  go.max_tokens = 12;
  go.sampling.seed = 5;
  go.allowed = eng.token_mask();
  int deltas = 0;
  std::string text;
  auto r = generate(*s, eng.tokenizer(), go, [&](std::string_view d) { ++deltas, text += d; return true; });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tokens.size(), 12u);
  EXPECT_GT(deltas, 1);
  EXPECT_EQ(text, r->text);
  for (int32_t id : r->tokens) EXPECT_FALSE(eng.tokenizer().token_bytes(id).empty()) << "undefined id " << id;
  fs::remove_all(io.out.parent_path());
}

TEST(Engine, BadFoldersAndDevicesGetClearErrors) {
  EXPECT_NE(open_error("/nonexistent/model").find("does not exist"), std::string::npos);
  fs::path empty = scratch("empty");
  fs::create_directories(empty);
  EXPECT_NE(open_error(empty).find("no config.json"), std::string::npos);
  // A tokenizer with more ids than the model's 256-row embedding table.
  fs::path big = scratch("bigtok");
  fs::copy(kFix / "gqa1_hd16/hf", big, fs::copy_options::recursive);
  ASSERT_TRUE(write_default_tokenizer(big).ok());
  const std::string err = open_error(big);
  EXPECT_NE(err.find("vocab_size is 256"), std::string::npos) << err;
  EngineOptions o;
  o.device = "tpu";
  o.require_tokenizer = false;
  EXPECT_NE(open_error(kFix / "gqa1_hd16/hf", o).find("unknown device 'tpu'"), std::string::npos);
  fs::remove_all(empty.parent_path());
}

// Zeroes the last rows of the embedding in a copy of a fixture: those ids become unusable.
TEST(Engine, TrailingZeroEmbeddingRowsAreMasked) {
  fs::path dir = scratch("zerorows");
  fs::copy(kFix / "gqa1_hd16/orig", dir, fs::copy_options::recursive);
  const fs::path st = dir / "model.safetensors";
  std::fstream f(st, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t hlen = 0;
  f.read(reinterpret_cast<char*>(&hlen), 8);
  std::string hdr(hlen, '\0');
  f.read(hdr.data(), std::streamsize(hlen));
  auto j = nlohmann::json::parse(hdr)["model.embed_tokens.weight"];
  const uint64_t end = j["data_offsets"][1].get<uint64_t>();
  const int64_t H = j["shape"][1].get<int64_t>();
  const std::string zeros(size_t(5 * H * 4), '\0');  // fp32 rows 251..255
  f.seekp(std::streamoff(8 + hlen + end - zeros.size()));
  f.write(zeros.data(), std::streamsize(zeros.size()));
  f.close();
  EngineOptions o;
  o.require_tokenizer = false;
  auto e = Engine::open(dir, o);
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e.value()->model().usable_vocab(), 251);
  EXPECT_EQ(e.value()->usable_vocab(), 251);
  fs::remove_all(dir.parent_path());
}

}  // namespace
