// tests/agent/test_config.cpp: config merging and its refusals, scripted-provider file errors,
// instance files, AGENTS.md collection.
#include <fstream>

#include "agent/config.h"
#include "agent/instances.h"
#include "agent/prompt.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace m1::agent;

TEST(Config, UserThenRepoMergeAndRepoCannotLoosen) {
  AgentConfig cfg;
  ASSERT_TRUE(apply_config_json({{"provider", "openai"}, {"model", "m"}, {"base_url", "http://h/v1"},
                                 {"budgets", {{"max_steps", 7}}}, {"sandbox", {{"shell_timeout_s", 30}}},
                                 {"mcpServers", {{"fs", {{"command", "npx"}, {"args", {"-y", "x"}}}}}}},
                                "user.json", true, cfg).ok());
  ASSERT_TRUE(apply_config_json({{"budgets", {{"max_tokens", 1000}}},
                                 {"mcpServers", {{"web", {{"url", "http://127.0.0.1:9/mcp"}}}}}},
                                "repo.json", false, cfg).ok());
  EXPECT_EQ(cfg.provider.kind, "openai");
  EXPECT_EQ(cfg.budgets.max_steps, 7);
  EXPECT_EQ(cfg.budgets.max_tokens, 1000u);
  EXPECT_EQ(cfg.sandbox.shell_timeout_s, 30);
  EXPECT_EQ(cfg.mcp_servers.size(), 2u);
  EXPECT_TRUE(cfg.sandbox.enforce);
  auto st = apply_config_json({{"sandbox", {{"mode", "off"}}}}, "repo.json", false, cfg);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "repo.json: a repository config may not turn the sandbox off");
  st = apply_config_json({{"sandbox", {{"network", true}}}}, "repo.json", false, cfg);
  ASSERT_FALSE(st.ok());
  st = apply_config_json({{"base_url", "http://evil/v1"}}, "repo.json", false, cfg);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(cfg.provider.base_url, "http://h/v1");
  EXPECT_TRUE(apply_config_json({{"sandbox", {{"mode", "off"}}}}, "user.json", true, cfg).ok());
  EXPECT_FALSE(cfg.sandbox.enforce);
}

TEST(Config, ErrorsNameFileAndField) {
  AgentConfig cfg;
  auto st = apply_config_json({{"provder", "x"}}, "c.json", true, cfg);
  EXPECT_EQ(st.error().message, "c.json: unknown field 'provder'");
  st = apply_config_json({{"budgets", {{"max_steps", "ten"}}}}, "c.json", true, cfg);
  EXPECT_EQ(st.error().message, "c.json: budget 'max_steps' must be a number >= 1, got \"ten\"");
  st = apply_config_json({{"mcpServers", {{"x", {{"args", {"a"}}}}}}}, "c.json", true, cfg);
  EXPECT_EQ(st.error().message, "c.json: mcpServers.x needs exactly one of 'command' (stdio) or 'url' (HTTP)");
  st = apply_config_json({{"mcpServers", {{"x", {{"command", "c"}, {"env", {{"K", 1}}}}}}}}, "c.json", true, cfg);
  EXPECT_EQ(st.error().message, "c.json: mcpServers.x.env.K must be a string");
  st = apply_config_json({{"provider", "gpt"}}, "c.json", true, cfg);
  EXPECT_EQ(st.error().message, "c.json: provider must be local, openai or scripted, got 'gpt'");
  auto dir = test::temp_dir("cfg");
  std::ofstream(dir / "bad.json") << "{ nope";
  st = apply_config_file(dir / "bad.json", true, cfg);
  EXPECT_EQ(st.error().message, "config file " + (dir / "bad.json").string() + " is not valid JSON");
  EXPECT_TRUE(apply_config_file(dir / "missing.json", true, cfg).ok());
  fs::remove_all(dir);
}

TEST(Script, FileErrorsNameLineAndTurn) {
  auto dir = test::temp_dir("script");
  std::ofstream(dir / "a.jsonl") << "{\"text\": \"x\"}\n{oops\n";
  auto r = make_scripted_provider((dir / "a.jsonl").string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "script '" + (dir / "a.jsonl").string() + "' line 2: not valid JSON (expected one turn object per line)");
  std::ofstream(dir / "b.json") << "[{\"tool_calls\": [{\"arguments\": {}}]}]";
  r = make_scripted_provider((dir / "b.json").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("turn 1: each tool call needs a string name"), std::string::npos);
  r = make_scripted_provider((dir / "none.json").string());
  ASSERT_FALSE(r.ok());
  fs::remove_all(dir);
}

TEST(Instances, ParsesSweBenchFieldsAndResolvesRelativeRepo) {
  auto dir = test::temp_dir("inst");
  json a = {{"instance_id", "a"}, {"repo", "r"}, {"base_commit", "abc"}, {"problem_statement", "p"},
            {"FAIL_TO_PASS", "[\"t1\", \"t2\"]"}, {"PASS_TO_PASS", {"t3"}}, {"test_cmd", "run {test} --x {test}"}};
  std::ofstream(dir / "t.jsonl") << a.dump() << "\n\n";
  auto r = load_instances(dir / "t.jsonl");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].repo, (dir / "r").string());
  EXPECT_EQ((*r)[0].fail_to_pass, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ((*r)[0].pass_to_pass, (std::vector<std::string>{"t3"}));
  EXPECT_EQ(test_command((*r)[0].test_cmd, "it's"), "run 'it'\\''s' --x 'it'\\''s'");
  EXPECT_EQ(test_command("make test", "t"), "make test 't'");
  std::ofstream(dir / "bad.jsonl") << json{{"instance_id", "a"}, {"repo", "r"}}.dump() << "\n";
  auto bad = load_instances(dir / "bad.jsonl");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, (dir / "bad.jsonl").string() + " line 1: missing field 'problem_statement'");
  fs::remove_all(dir);
}

TEST(Prompt, AgentsMdFromRootDownToCwdAndSubmitRuleStated) {
  auto dir = test::temp_dir("agentsmd");
  fs::create_directories(dir / "pkg" / "sub");
  std::ofstream(dir / "AGENTS.md") << "root rules\n";
  std::ofstream(dir / "pkg" / "sub" / "AGENTS.md") << "sub rules\n";
  std::ofstream(dir / "other.md") << "no\n";
  EXPECT_EQ(collect_agents_md(dir, dir / "pkg" / "sub"),
            "--- AGENTS.md ---\nroot rules\n--- pkg/sub/AGENTS.md ---\nsub rules\n");
  EXPECT_EQ(collect_agents_md(dir, dir), "--- AGENTS.md ---\nroot rules\n");
  std::string sys = fix_system_prompt("X");
  EXPECT_NE(sys.find("call the `submit` tool"), std::string::npos);
  EXPECT_NE(sys.find("without any tool call ends the task without submitting"), std::string::npos);
  fs::remove_all(dir);
}
