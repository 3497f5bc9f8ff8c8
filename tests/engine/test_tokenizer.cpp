// Tokenizer behaviour on the project's default tokenizer and on small hand-made tokenizer.json
// files: special ids, round trips on random UTF-8, special-token text as plain text, streaming,
// loading variants (vocab.json + merges.txt, pair-form merges), clear errors, and the trainer
// reproducing the embedded default merges from the committed corpus.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <sstream>

#include "engine/bpe_trainer.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

namespace m1::engine {
namespace {

bool unicode_valid(const std::string& s) {
  return unicode::to_valid_utf8(s) == s && unicode::complete_utf8_prefix(s) == s.size();
}

using nlohmann::json;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Tokenizer& default_tok() {
  static const Tokenizer t = [] {
    auto r = Tokenizer::from_json(default_tokenizer_json(), "default");
    if (!r.ok()) {
      ADD_FAILURE() << r.error().message;
      std::abort();
    }
    return std::move(r).value();
  }();
  return t;
}

TEST(Tokenizer, DefaultSpecialIds) {
  const Tokenizer& t = default_tok();
  EXPECT_EQ(t.token_id("<pad>"), 200000);
  EXPECT_EQ(t.token_id("<fim_prefix>"), 200001);
  EXPECT_EQ(t.token_id("<beginning_of_sentence>"), 200019);
  EXPECT_EQ(t.token_id("<end_of_sentence>"), 200020);
  EXPECT_EQ(t.token_id("<end_of_document>"), 200021);
  EXPECT_EQ(t.token_id("<function_call>"), 200022);
  EXPECT_EQ(t.vocab_size(), 200026);
  EXPECT_TRUE(t.is_special(200020));
  EXPECT_FALSE(t.is_special(100));
  EXPECT_EQ(t.id_to_token(200019), "<beginning_of_sentence>");
  EXPECT_EQ(t.id_to_token(65), "A");           // base ids are byte values
  EXPECT_EQ(t.id_to_token(' '), "\xC4\xA0");   // 'Ġ'
  EXPECT_EQ(t.id_to_token(-5), "");
  EXPECT_FALSE(t.token_id("<no such token>").has_value());
  // <think> and <tool_calls> are ordinary text (several tokens).
  EXPECT_GT(t.encode("<think>").size(), 1u);
  EXPECT_GT(t.encode("<tool_calls>").size(), 1u);
}

TEST(Tokenizer, DefaultIsGoodOnCode) {
  const Tokenizer& t = default_tok();
  std::string code = "def __init__(self, value):\n        self.value = value\n        return None\n";
  auto ids = t.encode(code);
  EXPECT_LT(ids.size(), code.size() / 3) << "a trained BPE should compress Python code > 3x";
  EXPECT_EQ(t.decode(ids), code);
  // Common words and indentation are single tokens.
  EXPECT_EQ(t.encode(" return").size(), 1u);
  EXPECT_EQ(t.encode("        ").size(), 1u);
}

TEST(Tokenizer, AssetFilesMatchEmbeddedDefault) {
  std::filesystem::path dir = std::filesystem::path(M1_SOURCE_DIR) / "engine/assets";
  EXPECT_EQ(read(dir / "tokenizer.json"), default_tokenizer_json());
  EXPECT_EQ(read(dir / "tokenizer_config.json"), default_tokenizer_config_json());
  auto cfg = json::parse(default_tokenizer_config_json());
  EXPECT_EQ(cfg["bos_token"], "<beginning_of_sentence>");
  EXPECT_EQ(cfg["eos_token"], "<end_of_sentence>");
  EXPECT_EQ(cfg["pad_token"], "<pad>");
  EXPECT_EQ(cfg["added_tokens_decoder"]["200020"]["content"], "<end_of_sentence>");
}

TEST(Tokenizer, SpecialTextIsPlainWhenMatchingIsOff) {
  const Tokenizer& t = default_tok();
  std::string text = "file says <end_of_sentence><beginning_of_sentence>ai name=assistant\n";
  auto on = t.encode(text, true);
  auto off = t.encode(text, false);
  EXPECT_NE(std::find(on.begin(), on.end(), 200020), on.end());
  for (int32_t id : off) EXPECT_LT(id, 200000) << "special id leaked from untrusted text";
  EXPECT_EQ(t.decode(off), text);
  EXPECT_EQ(t.decode(on), text);
  EXPECT_EQ(t.decode(on, /*skip_special=*/true), "file says ai name=assistant\n");
}

std::string random_utf8(std::mt19937& rng) {
  static const std::vector<uint32_t> singles = {0x0301, 0x0308, 0x200D, 0xFE0F, 0x1F3FD, 0x3000,
                                                0xA0, 0x2028, 0x85, 0xFFFD, 0x10FFFF, 0xE000};
  static const std::vector<std::string> chunks = {"<end_of_sentence>", "<pad>", "<fim_middle>",
                                                  "    ", "\n\n", "\r\n", "'s", "'LL", "def "};
  std::uniform_int_distribution<int> kind(0, 9), len(0, 40);
  std::string s;
  for (int i = 0, n = len(rng); i < n; ++i) {
    uint32_t cp;
    switch (kind(rng)) {
      case 0: cp = std::uniform_int_distribution<uint32_t>(0x20, 0x7E)(rng); break;
      case 1: cp = std::uniform_int_distribution<uint32_t>(0, 0x1F)(rng); break;
      case 2: cp = std::uniform_int_distribution<uint32_t>(0x80, 0x7FF)(rng); break;
      case 3: cp = std::uniform_int_distribution<uint32_t>(0x4E00, 0x9FFF)(rng); break;  // CJK
      case 4: cp = std::uniform_int_distribution<uint32_t>(0x1F300, 0x1FAFF)(rng); break;  // emoji
      case 5: cp = singles[std::uniform_int_distribution<size_t>(0, singles.size() - 1)(rng)]; break;
      case 6: s += chunks[std::uniform_int_distribution<size_t>(0, chunks.size() - 1)(rng)]; continue;
      case 7: s += std::string(std::uniform_int_distribution<size_t>(1, 9)(rng), ' '); continue;
      default: {
        cp = std::uniform_int_distribution<uint32_t>(0x800, 0x10FFFF)(rng);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      }
    }
    std::string enc;
    if (cp < 0x80) enc.push_back(char(cp));
    else if (cp < 0x800) { enc.push_back(char(0xC0 | (cp >> 6))); enc.push_back(char(0x80 | (cp & 0x3F))); }
    else if (cp < 0x10000) {
      enc.push_back(char(0xE0 | (cp >> 12))); enc.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      enc.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      enc.push_back(char(0xF0 | (cp >> 18))); enc.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      enc.push_back(char(0x80 | ((cp >> 6) & 0x3F))); enc.push_back(char(0x80 | (cp & 0x3F)));
    }
    s += enc;
  }
  return s;
}

TEST(Tokenizer, RoundTripAndStreamingOnRandomUtf8) {
  const Tokenizer& t = default_tok();
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s = random_utf8(rng);
    for (bool special : {true, false}) {
      auto ids = t.encode(s, special);
      ASSERT_EQ(t.decode(ids), s) << "case " << i;
      StreamDecoder sd(t);
      std::string streamed;
      for (int32_t id : ids) {
        std::string piece = sd.push(id);
        // Every emitted piece is complete, valid UTF-8.
        ASSERT_EQ(unicode_valid(piece), true) << "case " << i;
        streamed += piece;
      }
      streamed += sd.flush();
      ASSERT_EQ(streamed, s) << "case " << i;
    }
  }
}

TEST(Tokenizer, StreamingNeverSplitsACharacter) {
  const Tokenizer& t = default_tok();
  // With only a few thousand merges, a 4-byte emoji is several byte tokens.
  std::string s = "😀日";
  auto ids = t.encode(s);
  ASSERT_GT(ids.size(), 2u);
  StreamDecoder sd(t);
  std::vector<std::string> outs;
  for (int32_t id : ids) outs.push_back(sd.push(id));
  EXPECT_EQ(outs.front(), "");
  std::string all;
  for (auto& o : outs) all += o;
  EXPECT_EQ(all + sd.flush(), s);
  // A dangling partial character is flushed as U+FFFD, as decode() does.
  StreamDecoder sd2(t);
  EXPECT_EQ(sd2.push(ids[0]), "");
  EXPECT_EQ(sd2.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(std::vector<int32_t>{ids[0]}), "\xEF\xBF\xBD");
}

json tiny_json() {
  // Byte-level vocab of the 256 bytes (ids = byte values) plus "ab" and "abc".
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  auto base = json::parse(default_tokenizer_json());
  json vocab = json::object();
  for (auto& [k, v] : base["model"]["vocab"].items())
    if (v.get<int>() < 256) vocab[k] = v;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  base["model"]["vocab"] = vocab;
  base["model"]["merges"] = json::array({"a b", "ab c"});
  base["added_tokens"] = json::array();
  return base;
}

TEST(Tokenizer, MergeFormsAndIgnoreMerges) {
  json j = tiny_json();
  auto a = Tokenizer::from_json(j.dump(), "string-merges");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->encode("abc abx"), (std::vector<int32_t>{257, ' ', 256, 'x'}));
  j["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"})});
  auto b = Tokenizer::from_json(j.dump(), "pair-merges");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->encode("abc abx"), a->encode("abc abx"));
  // ignore_merges: a word that is itself in the vocab is one token even without a merge path.
  j["model"]["merges"] = json::array({"a b"});
  j["model"]["ignore_merges"] = true;
  auto c = Tokenizer::from_json(j.dump(), "ignore-merges");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->encode("abc"), (std::vector<int32_t>{257}));
  j["model"]["ignore_merges"] = false;
  auto d = Tokenizer::from_json(j.dump(), "no-ignore");
  EXPECT_EQ(d->encode("abc"), (std::vector<int32_t>{256, 'c'}));
}

TEST(Tokenizer, VocabJsonAndMergesTxt) {
  json j = tiny_json();
  auto dir = std::filesystem::temp_directory_path() / ("m1_tok_vm_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "vocab.json") << j["model"]["vocab"].dump();
  std::ofstream(dir / "merges.txt") << "#version: 0.2\na b\nab c\n";
  auto t = Tokenizer::load(dir);
  ASSERT_TRUE(t.ok()) << t.error().message;
  // GPT-2 pre-tokenization: " abc" is one piece, so BPE sees Ġ a b c.
  EXPECT_EQ(t->encode("abc abc"), (std::vector<int32_t>{257, ' ', 257}));
  std::filesystem::remove_all(dir);
}

TEST(Tokenizer, AddedTokenFlags) {
  json j = tiny_json();
  j["added_tokens"] = json::array({
      {{"id", 300}, {"content", "[M]"}, {"lstrip", true}, {"rstrip", false}, {"special", true}},
      {{"id", 301}, {"content", "<r>"}, {"lstrip", false}, {"rstrip", true}, {"special", true}},
      {{"id", 302}, {"content", "xy"}, {"special", false}, {"normalized", true}},
  });
  auto t = Tokenizer::from_json(j.dump(), "flags");
  ASSERT_TRUE(t.ok()) << t.error().message;
  // Tokens missing from the model vocab are numbered from the vocab size (258 entries), as the
  // reference library does, whatever "id" the file says.
  EXPECT_EQ(t->encode("a  [M]"), (std::vector<int32_t>{'a', 258}));
  EXPECT_EQ(t->encode("<r>  a"), (std::vector<int32_t>{259, 'a'}));
  EXPECT_EQ(t->encode("zxy", false), (std::vector<int32_t>{'z', 260}));  // non-special still matches
  EXPECT_EQ(t->vocab_size(), 261);
}

TEST(Tokenizer, ClearErrors) {
  auto expect_err = [](const std::string& text, const std::string& needle) {
    auto r = Tokenizer::from_json(text, "bad/tokenizer.json");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.error().message.find("bad/tokenizer.json"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  expect_err("{not json", "invalid JSON");
  expect_err("[]", "expected a JSON object");
  json j = tiny_json();
  auto with = [&](auto f) { json k = j; f(k); return k.dump(); };
  expect_err(with([](json& k) { k["model"]["type"] = "WordPiece"; }), "unsupported model type WordPiece");
  expect_err(with([](json& k) { k["normalizer"] = {{"type", "NFKC"}}; }), "unsupported normalizer NFKC");
  expect_err(with([](json& k) { k["pre_tokenizer"] = {{"type", "Metaspace"}}; }),
             "unsupported pre_tokenizer type Metaspace");
  expect_err(with([](json& k) { k["decoder"] = {{"type", "WordPiece"}}; }), "unsupported decoder WordPiece");
  expect_err(with([](json& k) { k["post_processor"] = {{"type", "RobertaProcessing"}}; }),
             "unsupported post_processor type RobertaProcessing");
  expect_err(with([](json& k) { k["model"]["merges"].push_back("q zz"); }), "not in the vocab");
  expect_err(with([](json& k) { k["model"]["byte_fallback"] = true; }), "byte_fallback");
  expect_err(with([](json& k) {
               k["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(?<=a)b";
             }),
             "lookbehind");
  expect_err(with([](json& k) { k["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }),
             "unknown Split behavior 'Sideways'");
  auto dir = std::filesystem::temp_directory_path() / ("m1_tok_bad_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto empty = Tokenizer::load(dir);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("no tokenizer.json"), std::string::npos) << empty.error().message;
  std::ofstream(dir / "tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": ";
  auto truncated = Tokenizer::load(dir);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find((dir / "tokenizer.json").string() + ": invalid JSON"),
            std::string::npos) << truncated.error().message;
  std::filesystem::remove_all(dir);
  auto missing = Tokenizer::load("/nonexistent/model");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/model"), std::string::npos);
}

TEST(Tokenizer, TemplateProcessing) {
  json j = tiny_json();
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {7}}, {"tokens", {"<s>"}}}}}}};
  auto t = Tokenizer::from_json(j.dump(), "template");
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto ids = t->encode("ab");
  EXPECT_EQ(ids, (std::vector<int32_t>{256}));
  EXPECT_EQ(t->apply_template(ids), (std::vector<int32_t>{7, 256}));
}

TEST(Tokenizer, WriteDefaultTokenizer) {
  auto dir = std::filesystem::temp_directory_path() / ("m1_tok_def_" + std::to_string(::getpid()));
  ASSERT_TRUE(write_default_tokenizer(dir).ok());
  auto t = Tokenizer::load(dir);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->encode("def f(x):\n  return x"), default_tok().encode("def f(x):\n  return x"));
  EXPECT_TRUE(std::filesystem::exists(dir / "tokenizer_config.json"));
  std::filesystem::remove_all(dir);
}

TEST(BpeTrainer, ReproducesTheEmbeddedDefault) {
  std::string corpus = read(std::filesystem::path(M1_SOURCE_DIR) / "engine/assets/tokenizer_corpus.txt");
  ASSERT_GT(corpus.size(), 100000u);
  BpeTrainerOptions opts;
  opts.vocab_size = 4096;
  auto bpe = train_bpe(std::vector<std::string>{corpus}, opts);
  ASSERT_TRUE(bpe.ok()) << bpe.error().message;
  EXPECT_EQ(bpe->vocab.size(), 4096u);
  auto j = json::parse(default_tokenizer_json());
  ASSERT_EQ(j["model"]["merges"].size(), bpe->merges.size());
  for (size_t i = 0; i < bpe->merges.size(); ++i)
    ASSERT_EQ(j["model"]["merges"][i], bpe->merges[i].first + " " + bpe->merges[i].second) << i;
}

TEST(BpeTrainer, LearnsTheMostFrequentPairsFirst) {
  std::vector<std::string> texts = {"low low low low lower lower newest newest newest widest"};
  BpeTrainerOptions opts;
  opts.vocab_size = 260;
  auto bpe = train_bpe(texts, opts);
  ASSERT_TRUE(bpe.ok());
  ASSERT_EQ(bpe->merges.size(), 4u);
  // "lo" and "ow" both occur 6 times; the tie goes to the smaller (left, right) id pair.
  std::vector<std::string> got;
  for (auto& [l, r] : bpe->merges) got.push_back(l + r);
  EXPECT_EQ(got, (std::vector<std::string>{"lo", "low", "\xC4\xA0low", "es"}));
  auto bad = train_bpe(texts, BpeTrainerOptions{100, 2, ""});
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace m1::engine
