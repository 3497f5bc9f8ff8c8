// The edit constraint (agent/edit_constraint.h) on a hand-made vocabulary: which tokens may follow
// inside a str_replace old_str, given the file text a conversation showed.
#include <gtest/gtest.h>

#include "agent/edit_constraint.h"

using namespace m1;
using namespace std::string_literals;
using m1::agent::EditConstraint;

namespace {

engine::ChatMessage view_result(std::string content) {
  return engine::ChatMessage::tool({engine::ToolResult{"call_1", "view", std::move(content), false}});
}

const std::vector<std::string> kPieces = {
    "",           // 0: a special token
    "    return", // 1
    " v",         // 2
    " >=",        // 3
    " <=",        // 4
    " limit",     // 5
    "\"",         // 6: closes the string
    "\", \"path\"",  // 7: closes and goes on
    "\\n",        // 8: an escaped newline
    "\\",         // 9: half an escape
    "x",          // 10
    "def f(v, limit):",  // 11
    "n",          // 12: completes a pending escape as \n
    "    v",      // 13
    "def g(v, limit):",  // 14
};

std::vector<uint8_t> ids(std::initializer_list<int> on) {
  std::vector<uint8_t> m(kPieces.size(), 0);
  for (int i : on) m[i] = 1;
  return m;
}

const std::string kCall = "Fix.\n<tool_calls>\n{\"name\": \"str_replace\", \"arguments\": {\"new_str\": \"    return v > limit\", \"old_str\": \"";

}  // namespace

TEST(EditConstraint, CorpusIsTheNumberedLinesOfToolResults) {
  EditConstraint c(kPieces);
  c.set_conversation({engine::ChatMessage::user("fix it"),
                      view_result("     1\tdef f(v, limit):\n     2\t    return v >= limit\n"),
                      view_result("error: old_str was not found in a.py; the closest text in the file is at line 2:\n"
                                  "     2\t    return v >= limit\ncopy it exactly")});
  EXPECT_EQ(c.corpus(), "def f(v, limit):\n    return v >= limit\0    return v >= limit\0"s);
}

TEST(EditConstraint, OnlyContinuationsThatStayInTheFile) {
  EditConstraint c(kPieces);
  c.set_conversation({view_result("     1\tdef f(v, limit):\n     2\t    return v >= limit\n")});
  // Outside a call, or in another argument: nothing is constrained.
  EXPECT_TRUE(c.allowed("Let me look.").empty());
  EXPECT_TRUE(c.allowed("<tool_calls>\n{\"name\": \"str_replace\", \"arguments\": {\"new_str\": \"    ret").empty());
  // At the start of old_str: tokens that begin a line of the file (not the closing quote: old_str
  // may not be empty; not a half escape: no line starts with a newline, tab, quote or backslash).
  EXPECT_EQ(c.allowed(kCall), ids({1, 11}));
  // The remembered "<=" is not in the file; ">=" is; the string may not close mid-line.
  EXPECT_EQ(c.allowed(kCall + "    return v"), ids({3}));
  // At the end of a line: close the string, or go on to the next line only where there is one.
  EXPECT_EQ(c.allowed(kCall + "    return v >= limit"), ids({6, 7}));
  EXPECT_EQ(c.allowed(kCall + "def f(v, limit):"), ids({6, 7, 8, 9}));
  // Half an escape: only 'n' completes it into a newline that the file has there.
  EXPECT_EQ(c.allowed(kCall + "def f(v, limit):\\"), ids({12}));
}

TEST(EditConstraint, NoConstraintOnceTheTextHasLeftTheFilesOrTheStringIsClosed) {
  EditConstraint c(kPieces);
  c.set_conversation({view_result("     1\tdef f(v, limit):\n     2\t    return v >= limit\n")});
  EXPECT_TRUE(c.allowed(kCall + "    return v <=").empty());        // already diverged
  EXPECT_TRUE(c.allowed(kCall + "    return v >= limit\", \"path\": \"a.py").empty());  // closed
  EditConstraint none(kPieces);
  none.set_conversation({engine::ChatMessage::user("no views yet")});
  EXPECT_TRUE(none.allowed(kCall).empty());
}

TEST(EditConstraint, TheNamedFunctionScopesTheLines) {
  EditConstraint c(kPieces);
  c.set_conversation({view_result("     1\tdef f(v, limit):\n     2\t    return v >= limit\n     3\t\n"
                                  "     4\tdef g(v, limit):\n     5\t\n     6\t    v\n")});
  const std::string call = "<tool_calls>\n{\"name\": \"str_replace\", \"arguments\": {\"new_str\": \"    return v\", \"old_str\": \"";
  // (8 and 9: an old_str may start with the empty line 3 or 5.)
  EXPECT_EQ(c.allowed("Fix it.\n" + call), ids({1, 8, 9, 11, 13, 14}));
  // "The bug is in `g`": the model's remembered `return v...` can't land on f's line.
  EXPECT_EQ(c.allowed("The bug is in `g`: `v` should be `return v`.\n" + call), ids({8, 9, 13, 14}));
  // A name the files do not define changes nothing.
  EXPECT_EQ(c.allowed("The bug is in `h`.\n" + call), ids({1, 8, 9, 11, 13, 14}));
}
