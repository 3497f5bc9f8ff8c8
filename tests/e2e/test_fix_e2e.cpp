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

#include "sandbox/sandbox.h"
#include "tools/process.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kM1 = std::string(M1_BINARY_DIR) + "/m1";
const std::string kEx = std::string(M1_SOURCE_DIR) + "/examples";

std::string q(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
