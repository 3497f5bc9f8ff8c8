// Unicode helpers and the split-regex engine: UTF-8 edge cases, category lookups, the byte-level
// map, regex constructs one by one, clear errors for unsupported syntax, and agreement of the
// hand-written GPT-2/cl100k fast paths with the general engine on random Unicode strings.
#include <gtest/gtest.h>

#include <random>

#include "engine/tokenizer_pretokenize.h"
#include "engine/unicode.h"
#include "engine/unicode_regex.h"

namespace m1::engine {
namespace {

namespace uc = unicode;

std::vector<uint32_t> cps(std::string_view s) {
  std::vector<uint32_t> c, o;
  uc::decode_utf8(s, c, o);
  return c;
}

std::vector<std::string> matches(std::string_view pattern, std::string_view text) {
  auto re = UnicodeRegex::compile(pattern);
  EXPECT_TRUE(re.ok()) << (re.ok() ? "" : re.error().message);
  if (!re.ok()) return {};
  std::vector<uint32_t> c, o;
  uc::decode_utf8(text, c, o);
  std::vector<std::string> out;
  for (auto [b, e] : re->find_all(c)) out.emplace_back(text.substr(o[b], o[e] - o[b]));
  return out;
}

using V = std::vector<std::string>;

TEST(Unicode, Categories) {
  EXPECT_EQ(uc::category('a'), uc::Ll);
  EXPECT_EQ(uc::category('Z'), uc::Lu);
  EXPECT_EQ(uc::category('5'), uc::Nd);
  EXPECT_EQ(uc::category(0x01C5), uc::Lt);   // ǅ
  EXPECT_EQ(uc::category(0x02B0), uc::Lm);   // ʰ
  EXPECT_EQ(uc::category(0x65E5), uc::Lo);   // 日
  EXPECT_EQ(uc::category(0x0301), uc::Mn);   // combining acute
  EXPECT_EQ(uc::category(0x00BD), uc::No);   // ½
  EXPECT_EQ(uc::category(0x216B), uc::Nl);   // Ⅻ
  EXPECT_EQ(uc::category(0x1F600), uc::So);  // 😀 (above the BMP table)
  EXPECT_EQ(uc::category(0x1D518), uc::Lu);  // 𝔘
  EXPECT_EQ(uc::category(0x10FFFF), uc::Cn);
  EXPECT_TRUE(uc::is_whitespace(0x3000));
  EXPECT_TRUE(uc::is_whitespace(0x85));
  EXPECT_FALSE(uc::is_whitespace(0x200B));  // zero width space is Cf, not White_Space
  EXPECT_EQ(uc::mask_for_property("Bogus"), 0u);
}

TEST(Unicode, Utf8) {
  std::string s = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";  // a é 日 😀
  EXPECT_EQ(cps(s), (std::vector<uint32_t>{'a', 0xE9, 0x65E5, 0x1F600}));
  EXPECT_EQ(uc::complete_utf8_prefix(s), s.size());
  EXPECT_EQ(uc::complete_utf8_prefix(s.substr(0, s.size() - 1)), s.size() - 4);
  EXPECT_EQ(uc::complete_utf8_prefix(s.substr(0, 2)), 1u);
  EXPECT_EQ(uc::complete_utf8_prefix("ab\xFF"), 3u);       // invalid, not incomplete
  EXPECT_EQ(uc::complete_utf8_prefix("ab\xE0\x80"), 4u);   // E0 80 can never complete
  // Lossy conversion: one U+FFFD per maximal invalid subpart.
  EXPECT_EQ(uc::to_valid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(uc::to_valid_utf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(uc::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(uc::to_valid_utf8(s), s);
}

TEST(Unicode, ByteLevelMapIsABijection) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  std::string bl = uc::bytes_to_byte_level(all), back;
  EXPECT_TRUE(uc::byte_level_to_bytes(bl, back));
  EXPECT_EQ(back, all);
  EXPECT_EQ(uc::byte_to_char(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(uc::byte_to_char('\n'), 0x10Au); // 'Ċ'
  EXPECT_EQ(uc::byte_to_char('a'), uint32_t('a'));
}

TEST(Regex, Constructs) {
  EXPECT_EQ(matches("a|ab|b", "abab"), (V{"a", "b", "a", "b"}));  // leftmost-first, not longest
  EXPECT_EQ(matches("ab|a", "abab"), (V{"ab", "ab"}));
  EXPECT_EQ(matches("a+?b", "aaab"), (V{"aaab"}));
  EXPECT_EQ(matches("a{2,3}", "aaaaaaa"), (V{"aaa", "aaa"}));
  EXPECT_EQ(matches("a{2}", "aaaaa"), (V{"aa", "aa"}));
  EXPECT_EQ(matches("a{2,}", "a aa aaaa"), (V{"aa", "aaaa"}));
  EXPECT_EQ(matches("a{1,3}?", "aaa"), (V{"a", "a", "a"}));
  EXPECT_EQ(matches(R"(\p{L}+)", "héllo wörld 日本 42"), (V{"héllo", "wörld", "日本"}));
  EXPECT_EQ(matches(R"(\P{L}+)", "ab12 cd"), (V{"12 "}));
  EXPECT_EQ(matches(R"([\p{Lu}\p{Lt}]+)", "ABcǅD"), (V{"AB", "ǅD"}));
  EXPECT_EQ(matches(R"([^\s\p{L}]+)", "a1+ b?!"), (V{"1+", "?!"}));
  EXPECT_EQ(matches(R"(\d+)", "x١٢3y"), (V{"١٢3"}));
  EXPECT_EQ(matches(R"(\w+)", "foo_bar-baz9"), (V{"foo_bar", "baz9"}));
  EXPECT_EQ(matches(R"(\s+(?!\S))", "a   b"), (V{"  "}));
  EXPECT_EQ(matches(R"(x(?=y))", "xy xz"), (V{"x"}));
  EXPECT_EQ(matches(R"((?i:'s|ll))", "'S 'ſ LL lL"), (V{"'S", "'ſ", "LL", "lL"}));
  EXPECT_EQ(matches(R"((?i)ab)", "AB aB ab"), (V{"AB", "aB", "ab"}));
  EXPECT_EQ(matches(R"([a-c]+)", "abcd"), (V{"abc"}));
  EXPECT_EQ(matches(R"([^a-c\n]+)", "abdef\nxa"), (V{"def", "x"}));
  EXPECT_EQ(matches(R"(^a)", "aaa"), (V{"a"}));
  EXPECT_EQ(matches(R"(a$)", "aaa"), (V{"a"}));
  EXPECT_EQ(matches(R"(\bfoo\b)", "foo food foo"), (V{"foo", "foo"}));
  EXPECT_EQ(matches(R"(\x41\u0042\x{1F600}\.)", "AB😀."), (V{"AB😀."}));
  EXPECT_EQ(matches(R"((?:ab)+)", "ababxab"), (V{"abab", "ab"}));
  EXPECT_EQ(matches(R"([\r\n/]*)", "a//\nb"), (V{"//\n"}));  // empty matches are skipped
  EXPECT_EQ(matches(".", "a\nb"), (V{"a", "b"}));
}

TEST(Regex, UnsupportedSyntaxIsAClearError) {
  for (const char* bad : {"(?<=a)b", "a++", "[[:alpha:]]", R"(\p{Greek})", "(a", "a)", "*a",
                          "(?x)a", "a{3,2}", R"(\k)", "(a*)*"}) {
    auto r = UnicodeRegex::compile(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find(std::string("/") + bad + "/"), std::string::npos)
        << r.error().message;
  }
}

std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> pool = {
      "a", "Z", "q", "é", "ß", "日", "한", "ǅ", "ʰ", "\xCC\x81", "0", "7", "١", "½", "Ⅻ",
      " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\xC2\xA0", "\xE3\x80\x80", "'", "'s", "'S",
      "'ll", "'RE", "'\xC5\xBF", "'\xE2\x84\xAA", "!", "?", ".", "/", "(", "_", "-", "😀",
      "👍🏽", "\xEF\xBF\xBD", "\x01", "\xFF", "def", "return", "x1", "  ", "    "};
  std::uniform_int_distribution<int> len(0, 30), pick(0, int(pool.size()) - 1);
  std::string s;
  for (int i = 0, n = len(rng); i < n; ++i) s += pool[size_t(pick(rng))];
  return s;
}

TEST(Regex, FastPathsAgreeWithGeneralEngine) {
  std::string qwen(kCl100kSplitPattern);
  qwen.replace(qwen.find(R"(\p{N}{1,3})"), 10, R"(\p{N})");
  for (std::string_view pat : {kGpt2SplitPattern, kCl100kSplitPattern, std::string_view(qwen)}) {
    auto sp = SplitPattern::compile(pat);
    ASSERT_TRUE(sp.ok());
    ASSERT_TRUE(sp->has_fast_path()) << pat;
    std::mt19937 rng(42);
    for (int i = 0; i < 3000; ++i) {
      std::string t = random_text(rng);
      auto c = cps(t);
      ASSERT_EQ(sp->find_all(c), sp->find_all_general(c)) << "pattern " << pat << " text [" << t << "]";
    }
  }
}

TEST(Regex, SplitBehaviors) {
  auto run = [](SplitBehavior b, bool invert) {
    std::string text = "ab12cd3e";
    std::vector<uint32_t> c, o;
    uc::decode_utf8(text, c, o);
    auto re = UnicodeRegex::compile("[0-9]");
    std::vector<std::string_view> out;
    apply_split(text, o, re->find_all(c), b, invert, out);
    return V(out.begin(), out.end());
  };
  EXPECT_EQ(run(SplitBehavior::Isolated, false), (V{"ab", "1", "2", "cd", "3", "e"}));
  EXPECT_EQ(run(SplitBehavior::Removed, false), (V{"ab", "cd", "e"}));
  EXPECT_EQ(run(SplitBehavior::Removed, true), (V{"1", "2", "3"}));
  EXPECT_EQ(run(SplitBehavior::MergedWithPrevious, false), (V{"ab1", "2", "cd3", "e"}));
  EXPECT_EQ(run(SplitBehavior::MergedWithNext, false), (V{"ab", "1", "2cd", "3e"}));
  EXPECT_EQ(run(SplitBehavior::Contiguous, false), (V{"ab", "12", "cd", "3", "e"}));
}

}  // namespace
}  // namespace m1::engine
