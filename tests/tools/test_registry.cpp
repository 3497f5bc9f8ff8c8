// tests/tools/test_registry.cpp: JSON Schema validation and Registry dispatch.
#include <gtest/gtest.h>

#include "tools/builtin.h"

using nlohmann::json;
using namespace m1::tools;

namespace {
json schema() {
  return {{"type", "object"},
          {"properties",
           {{"path", {{"type", "string"}, {"minLength", 1}}},
            {"n", {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}}},
            {"mode", {{"type", "string"}, {"enum", {"a", "b"}}}},
            {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
          {"required", {"path"}},
          {"additionalProperties", false}};
}
}  // namespace

TEST(Schema, AcceptsValid) {
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"n", 3}, {"mode", "a"}, {"tags", {"t"}}}), "");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"n", 2.0}}), "");  // integral float
}

TEST(Schema, NamesTheProblem) {
  EXPECT_EQ(validate_json_schema(schema(), json::object()), "arguments: missing required property 'path'");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", 3}}), "arguments.path: expected string, got integer");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"n", 9}}), "arguments.n: must be <= 5, got 9");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"n", 1.5}}), "arguments.n: expected integer, got number");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"mode", "c"}}),
            "arguments.mode: must be one of [\"a\",\"b\"], got \"c\"");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"tags", {"a", 1}}}),
            "arguments.tags[1]: expected string, got integer");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", "x"}, {"bogus", 1}}),
            "arguments: unexpected property 'bogus' (allowed: mode, n, path, tags)");
  EXPECT_EQ(validate_json_schema(schema(), {{"path", ""}}), "arguments.path: must be at least 1 characters");
  EXPECT_EQ(validate_json_schema(schema(), json::array()), "arguments: expected object, got array");
}

TEST(Registry, UnknownToolAndBadArgumentsAreErrorsNotThrows) {
  Registry reg;
  int calls = 0;
  reg.add(make_tool({"echo", "Echo", "echoes", schema(), std::nullopt},
                    [&](const json& a, ToolContext&) { ++calls; return ToolResult::ok_text(a["path"]); }));
  ToolContext ctx;
  auto r = reg.call("nope", {{"path", "x"}}, ctx);
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "unknown tool 'nope'; available tools: echo");
  r = reg.call("echo", {{"n", 1}}, ctx);
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "invalid arguments for tool 'echo': arguments: missing required property 'path'");
  EXPECT_EQ(calls, 0);
  r = reg.call("echo", {{"path", "hi"}}, ctx);
  EXPECT_FALSE(r.is_error);
  EXPECT_EQ(r.text(), "hi");
  EXPECT_EQ(calls, 1);
}

TEST(Registry, AddReplacesSameNameAndThrowingToolBecomesError) {
  Registry reg;
  reg.add(make_tool({"t", "", "", json::object(), std::nullopt}, [](const json&, ToolContext&) { return ToolResult::ok_text("1"); }));
  reg.add(make_tool({"t", "", "", json::object(), std::nullopt},
                    [](const json&, ToolContext&) -> ToolResult { throw std::runtime_error("boom"); }));
  EXPECT_EQ(reg.list().size(), 1u);
  ToolContext ctx;
  auto r = reg.call("t", json::object(), ctx);
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "tool 't' failed: boom");
  reg.remove("t");
  EXPECT_EQ(reg.find("t"), nullptr);
}

TEST(Builtin, AllSevenHaveObjectSchemas) {
  Registry reg;
  register_builtin_tools(reg, {});
  std::vector<std::string> names;
  for (const auto& s : reg.list()) {
    names.push_back(s.name);
    EXPECT_EQ(s.input_schema["type"], "object") << s.name;
    EXPECT_FALSE(s.description.empty()) << s.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"shell", "view", "str_replace", "create", "apply_patch", "search", "list"}));
  EXPECT_TRUE(reg.find("view")->spec().read_only);
  EXPECT_TRUE(reg.find("search")->spec().read_only);
  EXPECT_FALSE(reg.find("shell")->spec().read_only);
  EXPECT_FALSE(reg.find("str_replace")->spec().read_only);
}
