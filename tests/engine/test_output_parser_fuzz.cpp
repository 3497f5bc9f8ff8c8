// OutputParser fuzzing: generated outputs (thinking, text, tool calls with tricky arguments,
// malformed lines) fed in random splits, including mid-UTF-8, must give exactly the events of the
// one-piece feed once adjacent deltas are merged, and the calls the generator wrote. Random
// garbage and truncations must never crash and obey the same split invariance. Fixed seeds, so a
// failure reproduces; the whole file runs in about a second.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>

#include "engine/chat_format.h"
#include "engine/output_parser.h"

using namespace m1::engine;
using nlohmann::json;
using Kind = ParseEvent::Kind;

namespace {

std::vector<ParseEvent> merged(const std::vector<ParseEvent>& ev) {
  std::vector<ParseEvent> out;
  for (const auto& e : ev) {
    bool delta = e.kind == Kind::TextDelta || e.kind == Kind::ThinkingDelta;
    if (delta && !out.empty() && out.back().kind == e.kind) {
      out.back().text += e.text;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<ParseEvent> run_split(std::string_view s, const std::vector<std::size_t>& cuts) {
  OutputParser p;
  std::vector<ParseEvent> ev;
  std::size_t prev = 0;
  for (std::size_t c : cuts) {
    p.feed(s.substr(prev, c - prev), ev);
    prev = c;
  }
  p.feed(s.substr(prev), ev);
  p.finish(ev);
  return ev;
}

std::vector<std::size_t> random_cuts(std::mt19937& rng, std::size_t n) {
  std::vector<std::size_t> cuts;
  if (n == 0) return cuts;
  int mode = rng() % 3;
  if (mode == 0) {  // every byte
    for (std::size_t i = 1; i < n; ++i) cuts.push_back(i);
  } else {
    std::size_t k = mode == 1 ? 1 + rng() % 4 : 1 + rng() % (n < 64 ? n : 64);
    for (std::size_t i = 0; i < k; ++i) cuts.push_back(rng() % (n + 1));
    std::sort(cuts.begin(), cuts.end());
  }
  return cuts;
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

const char* kWords[] = {"alpha", "é", "日本語", "🙂", "x", "<", ">", "</", "<think", "tool_calls",
                        "\"q\"", "\\", "{", "}", "[", "]", "  ", "\t", "\n", "<tool_calls>",
                        "</tool_calls>", "</think>", "<think>", "name", "arguments"};

std::string random_words(std::mt19937& rng, int max_words, bool allow_tags) {
  std::string s;
  int n = rng() % (max_words + 1);
  for (int i = 0; i < n; ++i) {
    std::string w = kWords[rng() % std::size(kWords)];
    if (!allow_tags && w.find('<') != std::string::npos) w = "word";
    s += w;
    if (rng() % 2) s += ' ';
  }
  return s;
}

json random_value(std::mt19937& rng, int depth) {
  switch (rng() % (depth > 2 ? 4 : 6)) {
    case 0: return random_words(rng, 6, true);  // strings may hold any tag and newlines
    case 1: return static_cast<int>(rng() % 1000) - 500;
    case 2: return rng() % 2 == 0;
    case 3: return nullptr;
    case 4: {
      json a = json::array();
      for (int i = rng() % 3; i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (int i = rng() % 3; i > 0; --i) o["k" + std::to_string(rng() % 9)] = random_value(rng, depth + 1);
      return o;
    }
  }
}

struct Generated {
  std::string text;
  std::vector<std::pair<std::string, json>> calls;  // what a correct parser must return
  int bad_lines = 0;
};

Generated generate(std::mt19937& rng) {
  Generated g;
  if (rng() % 4 == 0) g.text += std::string(rng() % 3, '\n');
  if (rng() % 2) {
    // Thinking may mention anything except the closing tag itself.
    std::string t = random_words(rng, 12, true);
    for (auto p = t.find("</think>"); p != std::string::npos; p = t.find("</think>")) t.erase(p, 8);
    g.text += (rng() % 2 ? "<think>\n" : "<think>") + t + (rng() % 2 ? "\n</think>\n" : "</think>");
  }
  int blocks = rng() % 3;
  for (int b = 0; b < blocks || (b == 0 && blocks == 0); ++b) {
    g.text += random_words(rng, 8, false);
    if (blocks == 0) break;
    g.text += rng() % 2 ? "\n<tool_calls>\n" : "<tool_calls>";
    if (rng() % 2) g.text += "\n";
    int n = 1 + rng() % 3;
    for (int i = 0; i < n; ++i) {
      if (rng() % 6 == 0) {  // a malformed line
        const char* bad[] = {"{\"name\": \"x\", \"arguments\": {", "not json", "{\"arguments\": {}}",
                             "{\"name\": \"x\", \"arguments\": 3}", "[]", "{\"name\": 7, \"arguments\": {}}"};
        g.text += bad[rng() % std::size(bad)];
        g.text += "\n";
        ++g.bad_lines;
        continue;
      }
      std::string name = "tool_" + std::to_string(rng() % 5);
      json args = json::object();
      for (int k = rng() % 4; k > 0; --k) args["a" + std::to_string(k)] = random_value(rng, 0);
      g.calls.emplace_back(name, args);
      g.text += rng() % 2 ? python_json_dumps(json{{"name", name}, {"arguments", args}})
                          : json{{"arguments", args}, {"name", name}}.dump();
      bool last = i + 1 == n;
      if (!(last && rng() % 3 == 0)) g.text += "\n";
    }
    g.text += "</tool_calls>";
    if (rng() % 2) g.text += "\n";
  }
  return g;
}

void expect_split_invariant(std::mt19937& rng, const std::string& s, int splits, uint32_t seed) {
  const auto whole = merged(run_split(s, {}));
  for (int k = 0; k < splits; ++k) {
    auto cuts = random_cuts(rng, s.size());
    auto got = merged(run_split(s, cuts));
    ASSERT_EQ(got, whole) << "seed " << seed << " input " << json(s).dump(-1, ' ', false,
                                                                          json::error_handler_t::replace);
  }
}

}  // namespace

TEST(OutputParserFuzz, GeneratedOutputsParseTheSameUnderAnySplit) {
  const uint32_t seed = 20240601;
  std::mt19937 rng(seed);
  int with_calls = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    Generated g = generate(rng);
    ASSERT_TRUE(valid_utf8(g.text));
    ParsedOutput r = OutputParser::parse(g.text);
    ASSERT_EQ(r.calls.size(), g.calls.size()) << "seed " << seed << " iter " << iter << "\n" << g.text;
    for (std::size_t i = 0; i < g.calls.size(); ++i) {
      EXPECT_EQ(r.calls[i].name, g.calls[i].first);
      EXPECT_EQ(r.calls[i].arguments, g.calls[i].second) << g.text;
    }
    EXPECT_EQ(static_cast<int>(r.errors.size()), g.bad_lines) << g.text;
    EXPECT_TRUE(r.diagnostics.empty()) << g.text;
    with_calls += !g.calls.empty();
    // Every delta of a split feed is valid UTF-8 on its own.
    for (const auto& e : run_split(g.text, random_cuts(rng, g.text.size()))) {
      if (e.kind == Kind::TextDelta || e.kind == Kind::ThinkingDelta) {
        ASSERT_TRUE(valid_utf8(e.text)) << json(e.text).dump();
      }
    }
    expect_split_invariant(rng, g.text, 12, seed);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(with_calls, 500);
}

TEST(OutputParserFuzz, TruncatedOutputsNeverCrashAndStaySplitInvariant) {
  const uint32_t seed = 77;
  std::mt19937 rng(seed);
  int unclosed = 0;
  for (int iter = 0; iter < 800; ++iter) {
    Generated g = generate(rng);
    std::string cut = g.text.substr(0, rng() % (g.text.size() + 1));
    ParsedOutput r = OutputParser::parse(cut);
    unclosed += !r.diagnostics.empty();
    expect_split_invariant(rng, cut, 6, seed);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(unclosed, 40);  // truncation inside blocks must be reported
}

TEST(OutputParserFuzz, GarbageNeverCrashes) {
  const uint32_t seed = 99;
  std::mt19937 rng(seed);
  const char* pieces[] = {"<think>", "</think>", "<tool_calls>", "</tool_calls>", "<", "/", ">",
                          "{", "}", "\"", "\\", "\n", " ", "name", "arguments", ":", ",", "[", "]",
                          "<tool_", "</th", "\xc3", "\xa9", "\xf0\x9f", "\xff", "\x00", "1", "null"};
  auto start = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s;
    int n = rng() % 80;
    for (int i = 0; i < n; ++i) {
      if (rng() % 5 == 0) {
        s.push_back(static_cast<char>(rng() % 256));
      } else {
        const char* p = pieces[rng() % std::size(pieces)];
        s.append(p, p[0] == '\0' ? 1 : std::strlen(p));
      }
    }
    expect_split_invariant(rng, s, 3, seed);
    if (HasFatalFailure()) return;
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(secs, 5.0);
}
