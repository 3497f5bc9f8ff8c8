// OutputParser behaviour on hand-written outputs: thinking, text, tool calls, malformed lines,
// tags split across deltas, UTF-8 safety, end-of-stream diagnostics. Fuzzing is in
// test_output_parser_fuzz.cpp.
#include <gtest/gtest.h>

#include "engine/output_parser.h"

using namespace m1::engine;
using nlohmann::json;
using Kind = ParseEvent::Kind;

namespace {

ParsedOutput parse_bytewise(std::string_view s) {
  OutputParser p;
  std::vector<ParseEvent> ev;
  for (char c : s) p.feed(std::string_view(&c, 1), ev);
  p.finish(ev);
  ParsedOutput r;
  for (const auto& e : ev) r.add(e);
  return r;
}

// Both ways of feeding must agree; returns the one-piece result.
ParsedOutput parse_both(std::string_view s) {
  ParsedOutput a = OutputParser::parse(s);
  ParsedOutput b = parse_bytewise(s);
  EXPECT_EQ(a.thinking, b.thinking);
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.calls, b.calls);
  EXPECT_EQ(a.errors, b.errors);
  EXPECT_EQ(a.diagnostics, b.diagnostics);
  return a;
}

}  // namespace

TEST(OutputParser, PlainText) {
  auto r = parse_both("Hello, world.\nSecond line.");
  EXPECT_EQ(r.text, "Hello, world.\nSecond line.");
  EXPECT_EQ(r.thinking, "");
  EXPECT_TRUE(r.calls.empty());
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(OutputParser, ThinkingThenText) {
  auto r = parse_both("<think>\nStep 1.\nStep 2.\n</think>\nThe answer is 4.");
  EXPECT_EQ(r.thinking, "Step 1.\nStep 2.");
  EXPECT_EQ(r.text, "The answer is 4.");
  // Lenient: no newlines, leading whitespace before <think>.
  auto r2 = parse_both(" \n<think>short</think>Answer");
  EXPECT_EQ(r2.thinking, "short");
  EXPECT_EQ(r2.text, "Answer");
}

TEST(OutputParser, ThinkOnlyCountsAtTheStart) {
  auto r = parse_both("Well <think>not thinking</think> done");
  EXPECT_EQ(r.thinking, "");
  EXPECT_EQ(r.text, "Well <think>not thinking</think> done");
  auto r2 = parse_both("<thinking>x</thinking>");
  EXPECT_EQ(r2.text, "<thinking>x</thinking>");
  auto r3 = parse_both("<thi");
  EXPECT_EQ(r3.text, "<thi");
}

TEST(OutputParser, ToolCalls) {
  const std::string out =
      "<think>\nRun the tests.\n</think>\nLet me check.\n<tool_calls>\n"
      "{\"name\": \"shell\", \"arguments\": {\"command\": \"make test\"}}\n"
      "{\"name\": \"view\", \"arguments\": {\"path\": \"a.c\", \"range\": [1, 9]}}\n"
      "</tool_calls>";
  auto r = parse_both(out);
  EXPECT_EQ(r.thinking, "Run the tests.");
  EXPECT_EQ(r.text, "Let me check.");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].index, 0);
  EXPECT_EQ(r.calls[0].name, "shell");
  EXPECT_EQ(r.calls[0].arguments, json({{"command", "make test"}}));
  EXPECT_EQ(r.calls[0].raw, "{\"name\": \"shell\", \"arguments\": {\"command\": \"make test\"}}");
  EXPECT_EQ(r.calls[1].index, 1);
  EXPECT_EQ(r.calls[1].name, "view");
  EXPECT_EQ(r.calls[1].arguments, json({{"path", "a.c"}, {"range", {1, 9}}}));
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(OutputParser, ToolCallsInsideThinkAreIgnored) {
  auto r = parse_both(
      "<think>\nI could write <tool_calls>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_calls>\n"
      "but no.\n</think>\nNo calls.");
  EXPECT_TRUE(r.calls.empty());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.thinking,
            "I could write <tool_calls>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_calls>\nbut no.");
  EXPECT_EQ(r.text, "No calls.");
}

TEST(OutputParser, MalformedLinesBecomeErrorsAndOthersStand) {
  auto r = parse_both(
      "<tool_calls>\n"
      "{\"name\": \"a\", \"arguments\": {}}\n"
      "{\"name\": \"b\", \"arguments\": {\"x\": 1}\n"    // bad JSON
      "{\"arguments\": {}}\n"                           // missing name
      "{\"name\": \"c\", \"arguments\": \"{\\\"x\\\": 1}\"}\n"  // arguments a string
      "[1, 2]\n"                                        // not an object
      "{\"name\": \"\", \"arguments\": {}}\n"           // empty name
      "{\"name\": \"d\"}\n"                             // missing arguments
      "\n   \n"                                         // blank lines are not calls
      "{\"name\": \"e\", \"arguments\": {\"y\": [true]}}\n"
      "</tool_calls>");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "a");
  EXPECT_EQ(r.calls[0].index, 0);
  EXPECT_EQ(r.calls[1].name, "e");
  EXPECT_EQ(r.calls[1].index, 7);
  ASSERT_EQ(r.errors.size(), 6u);
  const char* expect[] = {"invalid JSON: parse error",
                          "missing \"name\"",
                          "\"arguments\" must be a JSON object, got string (write the object itself",
                          "expected a JSON object",
                          "\"name\" must be a non-empty string, got an empty string",
                          "missing \"arguments\""};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(r.errors[i].index, i + 1);
    EXPECT_EQ(r.errors[i].text.find(expect[i]), 0u) << r.errors[i].text;
  }
  EXPECT_EQ(r.errors[0].raw, "{\"name\": \"b\", \"arguments\": {\"x\": 1}");
  EXPECT_EQ(r.errors[0].name, "");   // invalid JSON: no name known
  EXPECT_EQ(r.errors[2].name, "c");  // arguments were wrong, the tool is known
  EXPECT_EQ(r.errors[5].name, "d");
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(OutputParser, CloseTagInsideJsonStringIsContent) {
  auto r = parse_both(
      "<tool_calls>\n{\"name\": \"create\", \"arguments\": {\"content\": \"a</tool_calls>b\\\"</tool_calls>\"}}\n"
      "{\"name\": \"x\", \"arguments\": {}}</tool_calls>\nDone.");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].arguments["content"], "a</tool_calls>b\"</tool_calls>");
  EXPECT_EQ(r.calls[1].name, "x");
  EXPECT_EQ(r.text, "Done.");
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(OutputParser, BrokenLineWithCloseTagIsCutAtTheTag) {
  auto r = parse_both("<tool_calls>\n{\"name\": \"x\", \"arguments\": {\"a\": \"oops</tool_calls>\nAfter.");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].raw, "{\"name\": \"x\", \"arguments\": {\"a\": \"oops");
  EXPECT_EQ(r.text, "After.");
  EXPECT_TRUE(r.diagnostics.empty());
}

TEST(OutputParser, SeveralBlocksKeepCounting) {
  auto r = parse_both(
      "A\n<tool_calls>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_calls>\nB\n"
      "<tool_calls>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_calls>\n");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1].index, 1);
  EXPECT_EQ(r.text, "AB");
}

TEST(OutputParser, UnclosedBlocksAreReported) {
  auto r = parse_both("<think>\nStill thinking\n");
  EXPECT_EQ(r.thinking, "Still thinking");
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0], "unclosed <think>: the output ended before </think>");

  auto r2 = parse_both("<tool_calls>\n{\"name\": \"a\", \"arguments\": {}}\n{\"name\": \"b\", \"arguments\": {}}");
  ASSERT_EQ(r2.calls.size(), 2u);  // the last line is complete JSON even without its newline
  ASSERT_EQ(r2.diagnostics.size(), 1u);
  EXPECT_EQ(r2.diagnostics[0], "unclosed <tool_calls>: the output ended before </tool_calls>");

  auto r3 = parse_both("<tool_calls>\n{\"name\": \"a\", \"argu");
  EXPECT_TRUE(r3.calls.empty());
  ASSERT_EQ(r3.errors.size(), 1u);
  EXPECT_EQ(r3.diagnostics.size(), 1u);
}

TEST(OutputParser, CallIsEmittedAsSoonAsItsLineCloses) {
  OutputParser p;
  auto ev = p.feed("Checking.\n<tool_calls>\n{\"name\": \"a\", \"arguments\": {\"k\": \"v\"}}");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::TextDelta);
  EXPECT_EQ(ev[0].text, "Checking.");
  ev = p.feed("\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::ToolCall);
  EXPECT_EQ(ev[0].name, "a");
  EXPECT_EQ(p.calls_seen(), 1);
  ev = p.feed("{\"name\": \"b\", \"arguments\": {}}</tool_calls>");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].name, "b");
  EXPECT_TRUE(p.finish().empty());
  EXPECT_TRUE(p.finished());
  EXPECT_TRUE(p.feed("more").empty());
}

TEST(OutputParser, DeltasNeverSplitTagsOrCharacters) {
  OutputParser p;
  EXPECT_TRUE(p.feed("<th").empty());
  EXPECT_TRUE(p.feed("ink>\n").empty());
  auto ev = p.feed("r\xc3");  // first byte of "é"
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].text, "r");
  ev = p.feed("\xa9 </thi");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::ThinkingDelta);
  EXPECT_EQ(ev[0].text, "\xc3\xa9");  // the space and "</thi" wait
  ev = p.feed("nk>\nok <tool_c");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::TextDelta);
  EXPECT_EQ(ev[0].text, "ok");
  ev = p.feed("x> done");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].text, " <tool_cx> done");
}

TEST(OutputParser, EventsToJson) {
  auto evs = OutputParser().feed("<tool_calls>\n{\"name\": \"a\", \"arguments\": {}}\n[]\n");
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(to_json(evs[0]),
            json({{"kind", "tool_call"}, {"index", 0}, {"name", "a"}, {"arguments", json::object()},
                  {"raw", "{\"name\": \"a\", \"arguments\": {}}"}}));
  EXPECT_EQ(to_json(evs[1])["kind"], "tool_call_error");
  EXPECT_EQ(to_json(evs[1])["index"], 1);
}
