// tests/agent/test_loop.cpp: the real loop driven by the scripted provider with the real built-in
// tools (shell unconfined: these tests are about the loop, the sandbox has its own suite).
// One test per stop reason, plus malformed calls, loop detection, output cuts, context budget,
// parallel read-only calls and interrupt.
#include <chrono>
#include <fstream>
#include <thread>

#include "agent/loop.h"
#include "test_util.h"
#include "tools/builtin.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace m1::agent;
using namespace m1::agent::test;

namespace {

json call(const std::string& name, json args) { return {{"name", name}, {"arguments", std::move(args)}}; }
json turn(std::vector<json> calls, std::string text = "") { return {{"text", text}, {"tool_calls", calls}}; }

class Loop : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = temp_dir("loop");
    ws = dir / "ws";
    fs::create_directories(ws);
    std::ofstream(ws / "a.txt") << "alpha\nbeta\n";
    m1::tools::BuiltinToolsOptions o;
    o.policy.mode = m1::sandbox::Mode::Off;
    o.policy.env = {{"PATH", "/usr/bin:/bin"}};
    m1::tools::register_builtin_tools(reg, o);
    add_submit_tool(reg);
  }
  void TearDown() override { fs::remove_all(dir); }

  LoopResult run(const std::vector<json>& turns, Budgets b = {}, const std::atomic<bool>* cancel = nullptr) {
    auto p = make_scripted_provider(write_script(dir, turns));
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    provider = std::move(p).value();
    LoopDeps d;
    d.provider = provider.get();
    d.registry = &reg;
    d.tool_ctx.workspace = ws;
    d.budgets = b;
    d.sink = &sink;
    d.cancel = cancel;
    conv = {ChatMessage::system("sys"), ChatMessage::user("task")};
    return run_loop(d, conv, state);
  }
  std::string result_text(size_t msg, size_t k = 0) { return conv.at(msg).tool_results.at(k).content; }

  fs::path dir, ws;
  m1::tools::Registry reg;
  std::unique_ptr<Provider> provider;
  CollectSink sink;
  std::vector<ChatMessage> conv;
  RunState state;
};

}  // namespace

TEST_F(Loop, SubmittedWithSummaryAndRecordedTranscript) {
  auto r = run({turn({call("view", {{"path", "a.txt"}})}, "look"), turn({call("submit", {{"summary", "done it"}})})});
  EXPECT_EQ(r.reason, StopReason::Submitted);
  EXPECT_EQ(r.summary, "done it");
  ASSERT_EQ(conv.size(), 6u);
  EXPECT_EQ(conv[2].role, m1::engine::Role::Assistant);
  EXPECT_EQ(conv[2].content, "look");
  EXPECT_EQ(result_text(3), "     1\talpha\n     2\tbeta\n");
  EXPECT_EQ(sink.messages.size(), 4u);  // the loop records what it adds
  auto stops = sink.of("stop");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].data["reason"], "submitted");
  EXPECT_EQ(stops[0].data["turns"], 2);
  EXPECT_EQ(state.turns, 2);
  EXPECT_GT(state.usage.input_tokens, 0u);
  EXPECT_EQ(sink.of("turn_end").size(), 2u);
  EXPECT_EQ(sink.of("text_delta").at(0).data["text"], "look");
}

TEST_F(Loop, ModelStoppedWhenTurnHasNoToolCall) {
  auto r = run({turn({}, "I think it is fixed.")});
  EXPECT_EQ(r.reason, StopReason::ModelStopped);
  EXPECT_EQ(state.turns, 1);
}

TEST_F(Loop, StepLimit) {
  Budgets b;
  b.max_steps = 2;
  b.loop_nudge_after = 10;
  auto r = run({turn({call("list", json::object())}), turn({call("view", {{"path", "a.txt"}})}),
                turn({call("submit", {{"summary", "x"}})})}, b);
  EXPECT_EQ(r.reason, StopReason::StepLimit);
  EXPECT_EQ(state.turns, 2);
  EXPECT_EQ(r.detail, "reached max_steps=2");
}

TEST_F(Loop, TokenLimitCountsReportedUsage) {
  Budgets b;
  b.max_tokens = 1500;
  json t = turn({call("list", json::object())});
  t["usage"] = {{"input_tokens", 600}, {"output_tokens", 200}};
  json t2 = turn({call("view", {{"path", "a.txt"}})});
  t2["usage"] = t["usage"];
  auto r = run({t, t2, turn({call("submit", {{"summary", "x"}})})}, b);
  EXPECT_EQ(r.reason, StopReason::TokenLimit);
  EXPECT_EQ(state.usage.total(), 1600u);
  EXPECT_EQ(state.turns, 2);
}

TEST_F(Loop, TimeLimit) {
  Budgets b;
  b.max_seconds = 0.3;
  json slow = turn({call("list", json::object())});
  slow["sleep_s"] = 0.4;
  auto r = run({slow, turn({call("submit", {{"summary", "x"}})})}, b);
  EXPECT_EQ(r.reason, StopReason::TimeLimit);
  EXPECT_EQ(state.turns, 1);
  EXPECT_GE(state.seconds, 0.4);
}

TEST_F(Loop, ProviderErrorAndExhaustedScriptStopWithError) {
  auto r = run({json{{"error", "backend down"}}});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_EQ(r.detail, "provider failed: script turn error: backend down");
  r = run({turn({call("list", json::object())})});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_NE(r.detail.find("has no turn 2"), std::string::npos) << r.detail;
}

TEST_F(Loop, InterruptKillsRunningToolAndStops) {
  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    cancel = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = run({turn({call("shell", {{"command", "sleep 20"}})}), turn({call("submit", {{"summary", "x"}})})}, {}, &cancel);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.join();
  EXPECT_EQ(r.reason, StopReason::Interrupted);
  EXPECT_LT(secs, 5.0);
  ASSERT_EQ(conv.size(), 4u);
  EXPECT_TRUE(conv[3].tool_results[0].is_error);
  EXPECT_NE(result_text(3).find("cancelled"), std::string::npos) << result_text(3);
}

TEST_F(Loop, MalformedCallsGoBackToTheModelThenStopAfterStreak) {
  json bad1 = {{"raw_tool_calls", {"{\"name\": \"view\", \"arguments\": {oops"}}};
  json bad2 = {{"tool_calls", {{{"name", "view"}, {"arguments_raw", "[1,2]"}}}}};
  json unknown = turn({call("teleport", {{"to", "mars"}})});
  json good = turn({call("view", {{"path", "a.txt"}})});
  Budgets b;
  b.max_format_errors = 3;
  auto r = run({bad1, bad2, good, bad1, unknown, turn({call("view", {{"nope", 1}})})}, b);
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_EQ(r.detail, "3 consecutive turns with only malformed tool calls");
  EXPECT_EQ(state.turns, 6);
  EXPECT_EQ(result_text(3).rfind("error: malformed tool call: tool call line is not a JSON object", 0), 0u) << result_text(3);
  EXPECT_EQ(result_text(5), "error: malformed tool call: arguments of call to 'view' must be a JSON object, got [1,2]"
                            " — write each call as one JSON object {\"name\": TOOL, \"arguments\": {...}}");
  EXPECT_FALSE(conv[7].tool_results[0].is_error);  // the good turn in between reset the streak
  EXPECT_EQ(result_text(11), "error: unknown tool 'teleport'; available tools: shell, view, str_replace, create, "
                             "apply_patch, search, list, submit");
  EXPECT_EQ(result_text(13), "error: invalid arguments for tool 'view': arguments: missing required property 'path'");
  EXPECT_EQ(sink.of("format_error").size(), 5u);
}

TEST_F(Loop, LoopDetectionNudgesThenStops) {
  json same = turn({call("view", {{"path", "a.txt"}})});
  auto r = run({same, same, same, same, same, same});
  EXPECT_EQ(r.reason, StopReason::Error);
  EXPECT_EQ(r.detail, "loop detected: the same calls with the same results 5 times in a row");
  EXPECT_EQ(state.turns, 5);
  auto nudges = sink.of("loop_nudge");
  ASSERT_EQ(nudges.size(), 2u);  // after the 3rd and 4th repeat
  bool user_nudge = false;
  for (const auto& m : conv)
    user_nudge = user_nudge || (m.role == m1::engine::Role::User && m.content.find("same tool call") != std::string::npos);
  EXPECT_TRUE(user_nudge);
}

TEST_F(Loop, OversizedToolOutputIsCutAtIngestion) {
  Budgets b;
  b.tool_output_tokens = 100;  // 400 characters
  auto r = run({turn({call("shell", {{"command", "seq 1 5000"}})}), turn({call("submit", {{"summary", "x"}})})}, b);
  EXPECT_EQ(r.reason, StopReason::Submitted);
  const std::string& out = result_text(3);
  EXPECT_LT(out.size(), 520u);
  EXPECT_NE(out.find("characters cut to fit the context"), std::string::npos) << out;
  EXPECT_NE(out.find("5000"), std::string::npos);  // the tail is kept
  EXPECT_EQ(out.rfind("exit code 0\n1\n2\n", 0), 0u);  // and the head
}

TEST_F(Loop, ContextBudgetElidesThenCompacts) {
  std::string big(1200, 'x');
  std::ofstream(ws / "big.txt") << big << "\n";
  // Size the window from what the fixed part (prompt + tool schemas) costs, plus ~1200 tokens.
  auto probe = make_scripted_provider(write_script(dir, {turn({})}));
  ASSERT_TRUE(probe.ok());
  std::vector<m1::engine::ToolDef> defs;
  for (const auto& s : reg.list()) defs.push_back({s.name, s.description, s.input_schema});
  size_t base = conversation_tokens(**probe, {ChatMessage::system("sys"), ChatMessage::user("task")}, defs);
  Budgets b;
  b.context_tokens = (base + 1200) * 100 / 85;
  b.loop_nudge_after = 100;
  b.loop_stop_after = 100;
  std::vector<json> turns;
  for (int i = 0; i < 10; ++i)
    turns.push_back(turn({call("view", {{"path", "big.txt"}})}, "step " + std::to_string(i) + std::string(600, '.')));
  turns.push_back(turn({call("submit", {{"summary", "x"}})}));
  auto r = run(turns, b);
  EXPECT_EQ(r.reason, StopReason::Submitted);
  auto el = sink.of("elision");
  ASSERT_FALSE(el.empty());
  EXPECT_LT(el[0].data["tokens_after"].get<size_t>(), el[0].data["tokens_before"].get<size_t>());
  auto comp = sink.of("compaction");
  ASSERT_FALSE(comp.empty());
  std::string summary = comp[0].data["summary"];
  EXPECT_NE(summary.find("Goal (the original task):\ntask"), std::string::npos) << summary;
  EXPECT_NE(summary.find("- turn 1: view big.txt"), std::string::npos) << summary;
  EXPECT_NE(summary.find("Left to do:"), std::string::npos);
  EXPECT_GE(state.generation, 1);
  EXPECT_EQ(conv[0].content, "sys");
  EXPECT_EQ(conv[1].content, "task");
  EXPECT_LT(conversation_tokens(*provider, conv, defs), b.context_tokens);
}

TEST_F(Loop, ReadOnlyCallsRunInParallelMutatingInOrder) {
  reg.add(m1::tools::make_tool({"slow_read", "", "", {{"type", "object"}}, std::nullopt, true},
                               [](const json&, m1::tools::ToolContext&) {
                                 std::this_thread::sleep_for(std::chrono::milliseconds(400));
                                 return m1::tools::ToolResult::ok_text("r");
                               }));
  auto t0 = std::chrono::steady_clock::now();
  auto r = run({turn({call("slow_read", json::object()), call("slow_read", json::object()),
                      call("slow_read", json::object()),
                      call("create", {{"path", "n.txt"}, {"content", "1"}}),
                      call("str_replace", {{"path", "n.txt"}, {"old_str", "1"}, {"new_str", "2"}})}),
                turn({call("submit", {{"summary", "x"}})})});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.reason, StopReason::Submitted);
  EXPECT_LT(secs, 1.15);  // three 0.4 s reads together; one after another would take >= 1.2 s
  ASSERT_EQ(conv[3].tool_results.size(), 5u);
  EXPECT_FALSE(conv[3].tool_results[4].is_error) << conv[3].tool_results[4].content;  // ran after create
  std::ifstream in(ws / "n.txt");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "2");
}

TEST(CutMiddle, KeepsHeadAndTailAndSaysHowMuch) {
  std::string s(1000, 'a');
  s += std::string(1000, 'b');
  auto c = cut_middle(s, 100);
  EXPECT_EQ(c, std::string(50, 'a') + "\n[... 1900 characters cut to fit the context ...]\n" + std::string(50, 'b'));
  EXPECT_EQ(cut_middle("short", 100), "short");
}

// The local provider on a random tiny model (m1 model init --preset tiny): output is noise, so
// this checks plumbing: the prompt is rendered and prefilled, output streams and is parsed, real
// token counts come back, budgets stop it.
#include "engine/model_init.h"

TEST_F(Loop, LocalProviderOnTinyRandomModelStreamsAndCountsTokens) {
  m1::engine::InitOptions io;
  io.preset = "tiny";
  io.out = dir / "tiny";
  auto init = m1::engine::init_model(io);
  ASSERT_TRUE(init.ok()) << init.error().message;
  ProviderOptions po;
  po.kind = "local";
  po.model = (dir / "tiny").string();
  po.max_output_tokens = 12;
  auto p = make_provider(po);
  ASSERT_TRUE(p.ok()) << p.error().message;
  provider = std::move(p).value();
  EXPECT_EQ(provider->label(), "local:" + po.model);
  LoopDeps d;
  d.provider = provider.get();
  d.registry = &reg;
  d.tool_ctx.workspace = ws;
  d.budgets.max_steps = 1;
  d.sink = &sink;
  conv = {ChatMessage::system("sys"), ChatMessage::user("task")};
  auto r = run_loop(d, conv, state);
  EXPECT_TRUE(r.reason == StopReason::ModelStopped || r.reason == StopReason::StepLimit ||
              r.reason == StopReason::Error) << stop_reason_name(r.reason) << " " << r.detail;
  EXPECT_EQ(state.turns, 1);
  auto ends = sink.of("turn_end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].data["estimated"], false);
  EXPECT_GT(ends[0].data["input_tokens"].get<int>(), 100);  // the tools block alone is longer
  EXPECT_LE(ends[0].data["output_tokens"].get<int>(), 12);
  po.model = (dir / "missing").string();
  auto bad = make_provider(po);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.rfind("cannot open model folder '" + po.model + "'", 0), 0u);
}
