// agent/eval.cpp: grading predictions. Each test runs in its own sandboxed command so one hang or
// crash fails only that test (timeout kills its process group).
#include "agent/eval.h"

#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "agent/config.h"
#include "agent/git.h"
#include "agent/instances.h"
#include "sandbox/sandbox.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::agent {

namespace {

TestOutcome run_test(const Instance& in, const std::string& test, const fs::path& wt,
                     const EvalOptions& o, const std::atomic<bool>* cancel) {
  TestOutcome t;
  t.name = test;
  sandbox::Policy pol;
  pol.mode = o.sandbox_enforce ? sandbox::Mode::Enforce : sandbox::Mode::Off;
  pol.workspace = wt;
  pol.timeout_s = o.test_timeout_s;
  pol.output_cap_bytes = 8192;
  pol.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, {"HOME", "/tmp"},
             {"LANG", "C.UTF-8"}, {"PYTHONDONTWRITEBYTECODE", "1"}, {"TERM", "dumb"}};
  sandbox::Command cmd{{"/bin/bash", "-c", test_command(in.test_cmd, test)}, wt, {}};
  auto r = sandbox::run(cmd, pol, cancel);
  if (!r.ok()) {
    t.detail = "could not run: " + r.error().message;
    return t;
  }
  t.passed = r->exit_code == 0 && !r->timed_out && !r->cancelled;
  if (r->timed_out) t.detail = "timed out";
  else if (r->term_signal) t.detail = "killed by signal " + std::to_string(r->term_signal);
  else t.detail = "exit " + std::to_string(r->exit_code);
  if (!t.passed) {
    std::string tail = r->output.size() > 1500 ? r->output.substr(r->output.size() - 1500) : r->output;
    t.detail += ": " + tail;
  }
  return t;
}

InstanceReport grade(const Instance& in, const Prediction* pred, const EvalOptions& o,
                     const std::atomic<bool>* cancel) {
  InstanceReport rep;
  rep.instance_id = in.instance_id;
  auto t0 = std::chrono::steady_clock::now();
  auto done = [&](std::string status, std::string err = "") {
    rep.status = std::move(status);
    rep.error = std::move(err);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
  };
  if (!pred) return done("no_prediction");
  if (pred->model_patch.find_first_not_of(" \n\t") == std::string::npos) return done("empty_patch");
  if (in.test_cmd.empty()) return done("error", "instance has no test_cmd");
  auto repo = materialize_repo(in.repo, state_dir() / "repos");
  if (!repo.ok()) return done("error", repo.error().message);
  auto base = resolve_commit(*repo, in.base_commit.empty() ? "HEAD" : in.base_commit);
  if (!base.ok()) return done("error", base.error().message);
  static std::atomic<int> counter{0};
  fs::path wt = state_dir() / "eval" / (in.instance_id + "-" + std::to_string(getpid()) + "-" +
                                        std::to_string(++counter));
  auto st = add_worktree(*repo, *base, wt, "");
  if (!st.ok()) return done("error", st.error().message);
  auto p = git_apply(wt, pred->model_patch, "the model patch");
  if (!p.ok()) {
    (void)remove_worktree(*repo, wt, "");
    return done("patch_failed", p.error().message);
  }
  auto tp = git_apply(wt, in.test_patch, "the test patch");
  if (!tp.ok()) {
    (void)remove_worktree(*repo, wt, "");
    return done("patch_failed", tp.error().message);
  }
  bool ok = true;
  for (const auto& t : in.fail_to_pass) {
    rep.fail_to_pass.push_back(run_test(in, t, wt, o, cancel));
    ok = ok && rep.fail_to_pass.back().passed;
  }
  for (const auto& t : in.pass_to_pass) {
    rep.pass_to_pass.push_back(run_test(in, t, wt, o, cancel));
    ok = ok && rep.pass_to_pass.back().passed;
  }
  (void)remove_worktree(*repo, wt, "");
  return done(ok ? "resolved" : "unresolved");
}

}  // namespace

Result<EvalReport> run_eval(const EvalOptions& o, const std::atomic<bool>* cancel) {
  if (o.sandbox_enforce) {
    auto st = sandbox::check_available();
    if (!st.ok())
      return make_error("the sandbox cannot confine the tests here: " + st.error().message +
                        "; pass --sandbox off to run them unconfined");
  }
  M1_ASSIGN_OR_RETURN(auto instances, load_instances(o.instances));
  M1_ASSIGN_OR_RETURN(auto preds, load_predictions(o.predictions));
  std::map<std::string, const Prediction*> by_id;
  for (const auto& p : preds) by_id[p.instance_id] = &p;  // the last line for an id wins
  EvalReport report;
  report.instances.resize(instances.size());
  std::mutex mu;
  size_t next = 0;
  auto worker = [&] {
    for (;;) {
      size_t i;
      {
        std::lock_guard<std::mutex> l(mu);
        if (next >= instances.size()) return;
        i = next++;
      }
      auto it = by_id.find(instances[i].instance_id);
      report.instances[i] = grade(instances[i], it == by_id.end() ? nullptr : it->second, o, cancel);
    }
  };
  std::vector<std::thread> pool;
  for (int k = 0; k < std::max(1, o.workers); ++k) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return report;
}

json EvalReport::summary() const {
  json per = json::object();
  int resolved = 0;
  for (const auto& r : instances) {
    resolved += r.resolved();
    auto tests = [](const std::vector<TestOutcome>& v) {
      json a = json::array();
      for (const auto& t : v) a.push_back({{"name", t.name}, {"passed", t.passed}, {"detail", t.detail}});
      return a;
    };
    per[r.instance_id] = {{"status", r.status}, {"resolved", r.resolved()}, {"error", r.error},
                          {"FAIL_TO_PASS", tests(r.fail_to_pass)}, {"PASS_TO_PASS", tests(r.pass_to_pass)},
                          {"seconds", r.seconds}};
  }
  int total = static_cast<int>(instances.size());
  return {{"total", total}, {"resolved", resolved},
          {"resolve_rate", total ? static_cast<double>(resolved) / total : 0.0}, {"instances", per}};
}

std::string EvalReport::table() const {
  size_t w = 11;
  for (const auto& r : instances) w = std::max(w, r.instance_id.size());
  std::ostringstream os;
  auto pad = [](std::string s, size_t n) { return s.size() >= n ? s : s + std::string(n - s.size(), ' '); };
  os << pad("instance_id", w) << "  " << pad("status", 13) << "  F2P    P2P    seconds\n";
  int resolved = 0;
  for (const auto& r : instances) {
    auto count = [](const std::vector<TestOutcome>& v) {
      int n = 0;
      for (const auto& t : v) n += t.passed;
      return std::to_string(n) + "/" + std::to_string(v.size());
    };
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", r.seconds);
    os << pad(r.instance_id, w) << "  " << pad(r.status, 13) << "  " << pad(count(r.fail_to_pass), 5)
       << "  " << pad(count(r.pass_to_pass), 5) << "  " << secs << "\n";
    if (!r.error.empty()) os << "    " << r.error.substr(0, 300) << "\n";
    resolved += r.resolved();
  }
  os << "resolved " << resolved << " of " << instances.size() << "\n";
  return os.str();
}

}  // namespace m1::agent
