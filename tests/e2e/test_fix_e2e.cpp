// tests/e2e/test_fix_e2e.cpp: runs the built `m1` (M1_BINARY_DIR/m1) as a user would, each test
// with its own M1_STATE_DIR (store, worktrees) passed in the child's environment only.
// Sandbox: on when sandbox::check_available() says it works here, else `--sandbox off` (the
// sandbox suite itself covers confinement).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/local_provider.h"
#include "agent/session_log.h"
#include "sandbox/sandbox.h"
#include "tools/process.h"
#include "support/test_files.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kM1 = std::string(M1_BINARY_DIR) + "/m1";
const std::string kEx = std::string(M1_SOURCE_DIR) + "/examples";
const std::string kSmall = std::string(M1_SOURCE_DIR) + "/models/m1-small";

using m1::test::slurp;
std::string q(const std::string& s) { return m1::test::shell_quote(s); }

std::vector<json> jsonl(const std::string& text) {
  std::vector<json> out;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

class E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("m1-e2e-" + std::to_string(getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    sandbox_flag = m1::sandbox::check_available().ok() ? "on" : "off";
  }
  void TearDown() override { fs::remove_all(dir); }

  // Runs `m1 ARGS` with this test's state dir; returns exit code, stdout in `out`.
  int m1(const std::string& args, std::string* out = nullptr, std::string* err = nullptr) {
    std::string cmd = "M1_STATE_DIR=" + q(dir.string()) + " M1_CONFIG_DIR=" + q((dir / "cfg").string()) + " " +
                      q(kM1) + " " + args;
    auto r = m1::tools::run_process({"/bin/bash", "-c", cmd}, dir);
    EXPECT_TRUE(r.ok());
    if (out) *out = r->out;
    if (err) *err = r->err;
    return r->exit_code;
  }
  // Starts `m1 ARGS` in the background with stdout to `out_file`; returns its pid.
  pid_t spawn(const std::string& args, const fs::path& out_file) {
    std::string cmd = "exec env M1_STATE_DIR=" + q(dir.string()) + " M1_CONFIG_DIR=" + q((dir / "cfg").string()) +
                      " " + q(kM1) + " " + args + " > " + q(out_file.string()) + " 2>" + q(out_file.string() + ".err");
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/bash", "bash", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    return pid;
  }
  bool wait_for(const fs::path& file, const std::string& needle, double seconds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      if (slurp(file).find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  json eval(const std::string& example, const fs::path& preds) {
    std::string out;
    int rc = m1("eval --instances " + q(kEx + "/" + example + "/task.jsonl") + " --predictions " +
                    q(preds.string()) + " --json --sandbox " + sandbox_flag, &out);
    EXPECT_EQ(rc, 0) << out;
    return json::parse(out);
  }
  std::string problem(const std::string& example) {
    return json::parse(slurp(kEx + "/" + example + "/task.jsonl"))["problem_statement"];
  }
  // A git copy of an example repo, as a user's checkout would be.
  fs::path user_repo(const std::string& example) {
    fs::path r = dir / "user-repo";
    auto p = m1::tools::run_process({kEx + "/materialize.sh", kEx + "/" + example + "/repo", r.string()}, dir);
    EXPECT_TRUE(p.ok() && p->exit_code == 0);
    return r;
  }

  fs::path dir;
  std::string sandbox_flag;
};

}  // namespace

class ExampleFix : public E2E, public ::testing::WithParamInterface<std::string> {};

TEST_P(ExampleFix, ScriptedFixResolvesAndWrongFixDoesNot) {
  const std::string ex = GetParam();
  std::string out, err;
  fs::path good = dir / "good.jsonl", bad = dir / "bad.jsonl";
  int rc = m1("fix --instances " + q(kEx + "/" + ex + "/task.jsonl") + " --script " + q(kEx + "/" + ex + "/fix.jsonl") +
                  " --out " + q(good.string()) + " --sandbox " + sandbox_flag, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  auto preds = jsonl(slurp(good));
  ASSERT_EQ(preds.size(), 1u) << err;
  EXPECT_EQ(preds[0]["stop_reason"], "submitted") << err;
  EXPECT_NE(preds[0]["model_patch"].get<std::string>().find("+++ b/"), std::string::npos);
  EXPECT_EQ(preds[0]["model_name_or_path"].get<std::string>().rfind("script:", 0), 0u);
  json s = eval(ex, good);
  EXPECT_EQ(s["resolved"], 1) << s.dump(2);
  rc = m1("fix --instances " + q(kEx + "/" + ex + "/task.jsonl") + " --script " + q(kEx + "/" + ex + "/wrong.jsonl") +
              " --out " + q(bad.string()) + " --sandbox " + sandbox_flag, &out, &err);
  ASSERT_EQ(rc, 0) << err;
  json w = eval(ex, bad);
  EXPECT_EQ(w["resolved"], 0) << w.dump(2);
  const json& inst = w["instances"].begin().value();
  EXPECT_EQ(inst["status"], "unresolved");
  // No prediction at all is graded, not skipped.
  std::ofstream(dir / "empty.jsonl") << "";
  json none = eval(ex, dir / "empty.jsonl");
  EXPECT_EQ(none["instances"].begin().value()["status"], "no_prediction");
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleFix, ::testing::Values("py-stats", "c-ringbuf"));

TEST_F(E2E, FixWorksInAWorktreeAndLeavesTheCheckoutAlone) {
  fs::path repo = user_repo("py-stats");
  std::string before = slurp(repo / "stats.py");
  std::ofstream(dir / "issue.txt") << problem("py-stats");
  std::string out, err;
  int rc = m1("fix --repo " + q(repo.string()) + " --issue-file " + q((dir / "issue.txt").string()) +
                  " --provider scripted --script " + q(kEx + "/py-stats/fix.jsonl") + " --json --sandbox " + sandbox_flag,
              &out, &err);
  EXPECT_EQ(rc, 0) << err;
  auto events = jsonl(out);
  ASSERT_FALSE(events.empty()) << err;
  EXPECT_EQ(events.front()["type"], "session_start");
  EXPECT_EQ(events.front()["provider"].get<std::string>().rfind("script:", 0), 0u);
  std::map<std::string, int> counts;
  for (const auto& e : events) counts[e["type"]]++;
  EXPECT_EQ(counts["turn_start"], 5);
  EXPECT_GE(counts["tool_call"], 5);
  EXPECT_EQ(counts["stop"], 1);
  const json& stop = *std::find_if(events.begin(), events.end(), [](const json& e) { return e["type"] == "stop"; });
  EXPECT_EQ(stop["reason"], "submitted");
  const json& patch = events.back();
  EXPECT_EQ(patch["type"], "patch");
  EXPECT_NE(patch["patch"].get<std::string>().find("+    return (s[mid - 1] + s[mid]) / 2"), std::string::npos);
  // The user's checkout: same file, clean status.
  EXPECT_EQ(slurp(repo / "stats.py"), before);
  auto st = m1::tools::run_process({"git", "status", "--porcelain"}, repo);
  EXPECT_EQ(st->out, "");
  // The session is listed with its counters.
  rc = m1("sessions --json", &out);
  auto sessions = jsonl(out);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]["stop_reason"], "submitted");
  EXPECT_EQ(sessions[0]["steps"], 5);
  EXPECT_EQ(sessions[0]["id"], events.front()["session"]);
}

TEST_F(E2E, ExitCodesForUsageErrorsAndUnsubmittedStops) {
  fs::path repo = user_repo("py-stats");
  std::string out, err;
  EXPECT_EQ(m1("fix --repo " + q(repo.string()), &out, &err), 2);
  EXPECT_NE(err.find("needs --issue TEXT or --issue-file FILE"), std::string::npos) << err;
  std::ofstream(dir / "talk.jsonl") << "{\"text\": \"I am not sure.\"}\n";
  EXPECT_EQ(m1("fix --repo " + q(repo.string()) + " --issue x --script " + q((dir / "talk.jsonl").string()) +
                   " --sandbox " + sandbox_flag, &out, &err), 3) << err;
  EXPECT_NE(out.find("stop:     model_stopped"), std::string::npos) << out;
  EXPECT_EQ(m1("fix --repo " + q(repo.string()) + " --issue x --script " + q((dir / "talk.jsonl").string()) +
                   " --max-steps 0", &out, &err), 2);
  EXPECT_EQ(m1("fix --repo /nonexistent --issue x --script " + q((dir / "talk.jsonl").string()), &out, &err), 2);
  EXPECT_NE(err.find("'/nonexistent' is not a directory"), std::string::npos) << err;
  EXPECT_EQ(m1("resume", &out, &err), 2);
}

TEST_F(E2E, ResumeAfterKillMinus9Completes) {
  fs::path repo = user_repo("py-stats");
  // Turn 1 fast, turn 2 waits 2 s (the process is killed then), then the fix and submit.
  std::ofstream(dir / "slow.jsonl")
      << json{{"tool_calls", {{{"name", "view"}, {"arguments", {{"path", "stats.py"}}}}}}}.dump() << "\n"
      << json{{"sleep_s", 2}, {"tool_calls", {{{"name", "str_replace"}, {"arguments", {{"path", "stats.py"},
             {"old_str", "    upper = s[mid]\n    return upper\n"}, {"new_str", "    return (s[mid - 1] + s[mid]) / 2\n"}}}}}}}.dump() << "\n"
      << json{{"tool_calls", {{{"name", "submit"}, {"arguments", {{"summary", "fixed"}}}}}}}.dump() << "\n";
  fs::path out_file = dir / "run1.jsonl";
  pid_t pid = spawn("fix --repo " + q(repo.string()) + " --issue x --script " + q((dir / "slow.jsonl").string()) +
                        " --json --sandbox " + sandbox_flag, out_file);
  ASSERT_TRUE(wait_for(out_file, "\"turn\":2", 20)) << slurp(out_file) << slurp(out_file.string() + ".err");
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  std::string out, err;
  m1("sessions --json", &out);
  auto s = jsonl(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["status"], "running");  // killed: never marked stopped
  int rc = m1("resume --last --json", &out, &err);
  EXPECT_EQ(rc, 0) << err << out;
  auto events = jsonl(out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front()["type"], "session_resume");
  EXPECT_EQ(events.back()["type"], "patch");
  EXPECT_NE(events.back()["patch"].get<std::string>().find("(s[mid - 1] + s[mid]) / 2"), std::string::npos);
  m1("sessions --json", &out);
  s = jsonl(out);
  EXPECT_EQ(s[0]["stop_reason"], "submitted");
  EXPECT_EQ(s[0]["steps"], 3);
}

TEST_F(E2E, SigintCancelsTheRunningToolAndSavesTheSession) {
  fs::path repo = user_repo("py-stats");
  std::ofstream(dir / "hang.jsonl")
      << json{{"tool_calls", {{{"name", "shell"}, {"arguments", {{"command", "sleep 60"}}}}}}}.dump() << "\n"
      << json{{"tool_calls", {{{"name", "submit"}, {"arguments", {{"summary", "done"}}}}}}}.dump() << "\n";
  fs::path out_file = dir / "run.jsonl";
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = spawn("fix --repo " + q(repo.string()) + " --issue x --script " + q((dir / "hang.jsonl").string()) +
                        " --json --sandbox " + sandbox_flag, out_file);
  ASSERT_TRUE(wait_for(out_file, "\"type\":\"tool_call\"", 20)) << slurp(out_file.string() + ".err");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(WIFEXITED(status)) << slurp(out_file.string() + ".err");
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_LT(secs, 30);
  auto events = jsonl(slurp(out_file));
  bool stopped = false;
  for (const auto& e : events) stopped = stopped || (e["type"] == "stop" && e["reason"] == "interrupted");
  EXPECT_TRUE(stopped) << slurp(out_file);
  std::string out;
  m1("sessions --json", &out);
  EXPECT_EQ(jsonl(out)[0]["stop_reason"], "interrupted");
  // The session continues from where it was interrupted.
  EXPECT_EQ(m1("resume --last", &out), 0) << out;
}

namespace {

std::vector<json> of_type(const std::vector<json>& events, const std::string& type) {
  std::vector<json> out;
  for (const auto& e : events)
    if (e["type"] == type) out.push_back(e);
  return out;
}

int processes_with(const std::string& needle) { return m1::test::host_processes_with(needle); }

}  // namespace

// `m1 resume` with the local provider (the embedded models/m1-small, greedy) continues the engine
// session saved after the last turn: the resumed turn prefills only the messages added since, and
// its reply is the one an uninterrupted provider produces for the same conversation.
TEST_F(E2E, LocalResumeContinuesTheSavedEngineStateWithoutAPrefill) {
  if (!fs::exists(kSmall + "/config.json")) GTEST_SKIP() << "models/m1-small is not in this checkout";
  fs::path repo = user_repo("py-stats");
  std::ofstream(dir / "issue.txt") << problem("py-stats");
  std::string out, err;
  int rc = m1("fix --repo " + q(repo.string()) + " --issue-file " + q((dir / "issue.txt").string()) +
                  " --provider local --model " + q(kSmall) + " --max-steps 1 --json --sandbox " + sandbox_flag,
              &out, &err);
  ASSERT_EQ(rc, 3) << err;  // step_limit (or model_stopped): not submitted, resumable
  auto run1 = jsonl(out);
  const std::string id = run1.front()["session"];
  auto ends1 = of_type(run1, "turn_end");
  ASSERT_EQ(ends1.size(), 1u);
  EXPECT_EQ(ends1[0]["provider"]["full_prefill"], true);
  const fs::path state = dir / "engine" / (id + ".m1s");
  ASSERT_TRUE(fs::exists(state)) << "no engine state at " << state;
  ASSERT_TRUE(fs::exists(state.string() + ".json"));

  rc = m1("resume --last --max-steps 2 --json", &out, &err);
  EXPECT_NE(rc, 1) << err;
  auto run2 = jsonl(out);
  ASSERT_FALSE(run2.empty()) << err;
  EXPECT_EQ(run2.front()["type"], "session_resume");
  auto notes = of_type(run2, "provider_note");
  ASSERT_EQ(notes.size(), 1u) << out;
  EXPECT_NE(notes[0]["message"].get<std::string>().find("continuing the saved engine state"), std::string::npos)
      << notes[0].dump();
  auto ends2 = of_type(run2, "turn_end");
  ASSERT_EQ(ends2.size(), 1u) << out;
  const json& p2 = ends2[0]["provider"];
  EXPECT_EQ(p2["full_prefill"], false) << p2.dump();
  EXPECT_EQ(p2["restored"], true) << p2.dump();
  EXPECT_EQ(p2["appended_tokens"], ends2[0]["input_tokens"]);
  EXPECT_LT(p2["appended_tokens"].get<uint64_t>(), ends1[0]["input_tokens"].get<uint64_t>());

  // The reference: one provider in this process, never interrupted, over the recorded conversation.
  auto log = m1::agent::open_session_log((dir / "m1.db").string());
  ASSERT_TRUE(log.ok()) << log.error().message;
  auto conv = m1::agent::load_conversation(**log, id);
  ASSERT_TRUE(conv.ok()) << conv.error().message;
  std::vector<size_t> replies;
  for (size_t i = 0; i < conv->size(); ++i)
    if ((*conv)[i].role == m1::engine::Role::Assistant) replies.push_back(i);
  ASSERT_EQ(replies.size(), 2u);
  // The tools the runs used are in the state file's sidecar (it stays: the task is not submitted).
  json side = json::parse(slurp(state.string() + ".json"));
  auto tools = m1::engine::tool_defs_from_json(side["tools"]);
  ASSERT_TRUE(tools.ok()) << tools.error().message;
  m1::agent::ProviderOptions po;
  po.kind = "local";
  po.model = kSmall;
  auto ref = m1::agent::LocalProvider::open(po);
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  for (size_t k = 0; k < replies.size(); ++k) {
    std::vector<m1::engine::ChatMessage> prefix(conv->begin(), conv->begin() + static_cast<long>(replies[k]));
    auto t = (*ref)->complete(prefix, *tools, nullptr, {});
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ((*ref)->last_stats().full_prefill, k == 0);
    EXPECT_EQ(t->message, (*conv)[replies[k]]) << "turn " << k + 1 << ": uninterrupted "
        << m1::engine::to_json(t->message).dump() << " vs resumed " << m1::engine::to_json((*conv)[replies[k]]).dump();
    EXPECT_EQ(t->usage.input_tokens, (k == 0 ? ends1[0] : ends2[0])["input_tokens"].get<uint64_t>());
  }
}

// The state file lives only while the task can be resumed: the embedded model fixes py-schedule
// (the main job of scripts/run.sh) after a resume, and the submitted task leaves no engine state.
TEST_F(E2E, LocalResumeThatSubmitsRemovesTheEngineState) {
  if (!fs::exists(kSmall + "/config.json")) GTEST_SKIP() << "models/m1-small is not in this checkout";
  std::ofstream(dir / "issue.txt") << problem("py-schedule");
  std::string out, err;
  int rc = m1("fix --repo " + q(kEx + "/py-schedule/repo") + " --issue-file " + q((dir / "issue.txt").string()) +
                  " --model " + q(kSmall) + " --max-steps 2 --json --sandbox " + sandbox_flag, &out, &err);
  ASSERT_EQ(rc, 3) << err;
  const std::string id = jsonl(out).front()["session"];
  ASSERT_TRUE(fs::exists(dir / "engine" / (id + ".m1s")));
  rc = m1("resume " + id + " --max-steps 12 --json", &out, &err);
  auto events = jsonl(out);
  auto notes = of_type(events, "provider_note");
  ASSERT_FALSE(notes.empty()) << out;
  EXPECT_NE(notes[0]["message"].get<std::string>().find("continuing the saved engine state"), std::string::npos);
  ASSERT_EQ(rc, 0) << "models/m1-small no longer submits py-schedule after a resume; stop: "
                   << of_type(events, "stop").at(0).dump();
  EXPECT_FALSE(fs::exists(dir / "engine" / (id + ".m1s")));
  EXPECT_FALSE(fs::exists(dir / "engine" / (id + ".m1s.json")));
}

// A damaged state file is never trusted: the resumed turn prefills the whole conversation, says
// why, and the task goes on (here on a tiny random model made by `m1 model init`).
TEST_F(E2E, LocalResumeWithACorruptStateFilePrefillsEverythingAndSaysSo) {
  fs::path model = dir / "tiny";
  std::string out, err;
  ASSERT_EQ(m1("model init --preset tiny --out " + q(model.string()), &out, &err), 0) << err;
  // A random model rarely stops on its own: short replies keep the test quick.
  fs::create_directories(dir / "cfg");
  std::ofstream(dir / "cfg" / "config.json") << json{{"max_output_tokens", 32}}.dump();
  fs::path repo = user_repo("py-stats");
  int rc = m1("fix --repo " + q(repo.string()) + " --issue x --provider local --model " + q(model.string()) +
                  " --max-steps 1 --json --sandbox " + sandbox_flag, &out, &err);
  ASSERT_EQ(rc, 3) << err;
  const std::string id = jsonl(out).front()["session"];
  const fs::path state = dir / "engine" / (id + ".m1s");
  ASSERT_TRUE(fs::exists(state));
  {
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(state) / 2));
    f.put('\x7f').put('\x01').put('\x55');
  }
  rc = m1("resume " + id + " --max-steps 2 --json", &out, &err);
  EXPECT_EQ(rc, 3) << err;  // a stop, not a crash or an error
  auto events = jsonl(out);
  auto notes = of_type(events, "provider_note");
  ASSERT_EQ(notes.size(), 1u) << out;
  const std::string note = notes[0]["message"];
  EXPECT_NE(note.find("saved engine state not used"), std::string::npos) << note;
  EXPECT_NE(note.find("corrupt"), std::string::npos) << note;
  auto ends = of_type(events, "turn_end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0]["provider"]["full_prefill"], true);
  EXPECT_EQ(ends[0]["provider"]["restored"], false);
  // The turn saved a good state again: the next resume continues it.
  rc = m1("resume " + id + " --max-steps 3 --json", &out, &err);
  EXPECT_EQ(rc, 3) << err;
  ends = of_type(jsonl(out), "turn_end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0]["provider"]["restored"], true) << out;
}

// The second Ctrl-C: exits at once (130) without waiting for the turn, kills the running tool's
// whole group, and the store says the session stopped as `interrupted`. Two ways: SIGINT, then a
// second SIGINT once the first was handled (what a user does); and SIGINT + SIGTERM sent back to
// back (two different signals are never merged into one, so the second-interrupt path surely
// runs while the first is still being handled).
TEST_F(E2E, SecondSigintExitsAtOnceAndTheSessionIsMarkedInterrupted) {
  fs::path repo = user_repo("py-stats");
  std::ofstream(dir / "hang.jsonl")
      << json{{"tool_calls", {{{"name", "shell"}, {"arguments", {{"command", "sleep 1030.5 & sleep 1030.6"}}}}}}}.dump() << "\n"
      << json{{"tool_calls", {{{"name", "submit"}, {"arguments", {{"summary", "done"}}}}}}}.dump() << "\n";
  for (bool back_to_back : {false, true}) {
    SCOPED_TRACE(back_to_back ? "SIGINT + SIGTERM back to back" : "SIGINT twice");
    fs::path out_file = dir / (back_to_back ? "run2.jsonl" : "run1.jsonl");
    pid_t pid = spawn("fix --repo " + q(repo.string()) + " --issue x --script " + q((dir / "hang.jsonl").string()) +
                          " --json --sandbox " + sandbox_flag, out_file);
    ASSERT_TRUE(wait_for(out_file, "\"type\":\"tool_call\"", 20)) << slurp(out_file.string() + ".err");
    for (int i = 0; i < 100 && processes_with("sleep 1030.") < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_GE(processes_with("sleep 1030."), 2);
    const std::string id = jsonl(slurp(out_file)).front()["session"];
    auto t0 = std::chrono::steady_clock::now();
    kill(pid, SIGINT);
    if (back_to_back) {
      kill(pid, SIGTERM);
    } else {
      wait_for(out_file.string() + ".err", "interrupting", 5);
      kill(pid, SIGINT);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string err = slurp(out_file.string() + ".err");
    ASSERT_TRUE(WIFEXITED(status)) << err;
    EXPECT_EQ(WEXITSTATUS(status), 130) << err;
    EXPECT_LT(secs, 10) << err;
    if (back_to_back) EXPECT_NE(err.find("second interrupt"), std::string::npos) << err;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(processes_with("sleep 1030."), 0);  // no orphan of the tool survived
    std::string out;
    m1("sessions --json", &out);
    bool found = false;
    for (const auto& s : jsonl(out)) {
      if (s["id"] != id) continue;
      found = true;
      EXPECT_EQ(s["status"], "stopped") << s.dump();
      EXPECT_EQ(s["stop_reason"], "interrupted") << s.dump();
    }
    EXPECT_TRUE(found) << out;
    // Still resumable, and it finishes.
    EXPECT_EQ(m1("resume " + id + " --sandbox " + sandbox_flag, &out), 0) << out;
  }
  // A batch run: every session its workers were running is marked the same way.
  fs::path preds = dir / "preds.jsonl", out_file = dir / "batch.jsonl";
  pid_t pid = spawn("fix --instances " + q(kEx + "/py-stats/task.jsonl") + " --script " + q((dir / "hang.jsonl").string()) +
                        " --out " + q(preds.string()) + " --sandbox " + sandbox_flag, out_file);
  for (int i = 0; i < 200 && processes_with("sleep 1030.") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(processes_with("sleep 1030."), 2) << slurp(out_file.string() + ".err");
  kill(pid, SIGINT);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(processes_with("sleep 1030."), 0);
  std::string out;
  m1("sessions --json", &out);
  auto s = jsonl(out);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0]["kind"], "batch-fix");  // newest first
  EXPECT_EQ(s[0]["status"], "stopped") << s[0].dump();
  EXPECT_EQ(s[0]["stop_reason"], "interrupted") << s[0].dump();
}

// `m1 sessions --prune`: worktrees of submitted sessions go (with their branch, saved outputs and
// engine state); stopped ones stay unless --resumable; a running one stays while its process lives.
TEST_F(E2E, PruneRemovesFinishedWorktreesAndKeepsResumableOnes) {
  fs::path repo = user_repo("py-stats");
  std::string out, err;
  auto fix = [&](const std::string& script_args) {
    std::string o, e;
    m1("fix --repo " + q(repo.string()) + " --issue x " + script_args + " --json --sandbox " + sandbox_flag, &o, &e);
    auto ev = jsonl(o);
    EXPECT_FALSE(ev.empty()) << e;
    return ev.empty() ? std::string() : ev.front()["session"].get<std::string>();
  };
  const std::string done = fix("--script " + q(kEx + "/py-stats/fix.jsonl"));             // submitted
  const std::string stopped = fix("--script " + q(kEx + "/py-stats/fix.jsonl") + " --max-steps 1");  // step_limit
  ASSERT_FALSE(done.empty());
  ASSERT_FALSE(stopped.empty());
  const fs::path wt_done = dir / "worktrees" / done, wt_stopped = dir / "worktrees" / stopped;
  ASSERT_TRUE(fs::exists(wt_done) && fs::exists(wt_stopped));
  fs::create_directories(dir / "engine");
  std::ofstream(dir / "engine" / (done + ".m1s")) << "state";
  std::ofstream(dir / "engine" / (stopped + ".m1s")) << "state";
  auto branches = [&] {
    auto r = m1::tools::run_process({"git", "branch", "--list", "m1/*"}, repo);
    return r.ok() ? r->out : std::string();
  };
  ASSERT_NE(branches().find("m1/" + done), std::string::npos);

  // A run in progress (its script turn waits), seen as running with a live process.
  std::ofstream(dir / "slow.jsonl") << json{{"sleep_s", 60}, {"text", "thinking"}}.dump() << "\n";
  fs::path out_file = dir / "live.jsonl";
  pid_t live = spawn("fix --repo " + q(repo.string()) + " --issue x --script " + q((dir / "slow.jsonl").string()) +
                         " --json --sandbox " + sandbox_flag, out_file);
  ASSERT_TRUE(wait_for(out_file, "\"type\":\"turn_start\"", 20)) << slurp(out_file.string() + ".err");
  const std::string running = jsonl(slurp(out_file)).front()["session"];

  auto prune = [&](const std::string& args) {
    std::string o, e;
    int code = m1("sessions --prune --json " + args, &o, &e);
    EXPECT_EQ(code, 0) << e;
    std::map<std::string, json> by_id;
    for (const auto& j : jsonl(o)) by_id[j["id"]] = j;
    return by_id;
  };
  // Dry run: says what would go, removes nothing.
  auto r = prune("--dry-run");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[done]["removed"], true);
  EXPECT_EQ(r[stopped]["removed"], false);
  EXPECT_NE(r[stopped]["why"].get<std::string>().find("can be resumed"), std::string::npos) << r[stopped].dump();
  EXPECT_EQ(r[running]["removed"], false);
  EXPECT_TRUE(fs::exists(wt_done));
  // --older-than: everything here is newer than a day, so nothing goes.
  r = prune("--older-than 1 --resumable");
  for (const auto& [id, e] : r) EXPECT_EQ(e["removed"], false) << e.dump();
  EXPECT_TRUE(fs::exists(wt_done));
  // The default: only the submitted session.
  r = prune("");
  EXPECT_EQ(r[done]["removed"], true);
  EXPECT_FALSE(fs::exists(wt_done));
  EXPECT_FALSE(fs::exists(dir / "engine" / (done + ".m1s")));
  EXPECT_EQ(branches().find("m1/" + done), std::string::npos) << branches();
  EXPECT_TRUE(fs::exists(wt_stopped));
  EXPECT_TRUE(fs::exists(dir / "engine" / (stopped + ".m1s")));
  EXPECT_EQ(m1("resume " + done, &out, &err), 1);
  EXPECT_NE(err.find("removed by `m1 sessions --prune`"), std::string::npos) << err;
  // --resumable: the stopped one too; the running one never while its process lives.
  r = prune("--resumable");
  EXPECT_EQ(r.count(done), 0u);  // no worktree left: not listed
  EXPECT_EQ(r[stopped]["removed"], true);
  EXPECT_EQ(r[running]["removed"], false);
  EXPECT_NE(r[running]["why"].get<std::string>().find("still running"), std::string::npos) << r[running].dump();
  EXPECT_FALSE(fs::exists(wt_stopped));
  EXPECT_TRUE(fs::exists(dir / "worktrees" / running));
  // Killed (-9): still marked running, but its process is gone, so --resumable takes it.
  kill(live, SIGKILL);
  int status = 0;
  waitpid(live, &status, 0);
  r = prune("");
  EXPECT_EQ(r[running]["removed"], false);
  EXPECT_NE(r[running]["why"].get<std::string>().find("killed while running"), std::string::npos) << r[running].dump();
  r = prune("--resumable");
  EXPECT_EQ(r[running]["removed"], true);
  EXPECT_FALSE(fs::exists(dir / "worktrees" / running));
  // Nothing left; bad input is a usage error that names the flag.
  EXPECT_TRUE(prune("").empty());
  EXPECT_EQ(m1("sessions --older-than 3", &out, &err), 2);
  EXPECT_NE(err.find("--prune"), std::string::npos) << err;
  EXPECT_EQ(m1("sessions --prune --older-than -1", &out, &err), 2);
  EXPECT_NE(err.find("--older-than"), std::string::npos) << err;
}
