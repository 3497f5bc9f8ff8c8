// agent/fix.h: a repository bug-fix task end to end: an isolated git worktree of the repo, the
// tools and sandbox policy, the provider, the loop, the recorded session, the final patch.
// The user's checkout is never touched: work happens on branch m1/<session> in
// <state dir>/worktrees/<session>, which stays for inspection and `m1 resume` (batch runs remove it).
#pragma once
#include <atomic>
#include <filesystem>
#include <string>

#include "agent/config.h"
#include "agent/loop.h"
#include "agent/session_log.h"

namespace m1::agent {

struct FixRequest {
  std::filesystem::path repo;     // a git work tree, or a plain folder (materialized, see git.h)
  std::string problem_statement;
  std::string base_commit;        // empty: HEAD of repo
  std::string instance_id;        // batch runs
  std::string kind = "fix";
  AgentConfig config;
  bool keep_worktree = true;
};

struct FixOutcome {
  std::string session_id;
  LoopResult result;
  std::string patch;              // git diff against base_commit
  std::filesystem::path worktree;
  RunState state;
  std::string provider_label;
};

// `extra` (may be null) also receives every event (terminal view, --json).
// `on_session` (may be empty) learns the session id as soon as it exists.
Result<FixOutcome> run_fix(const FixRequest& req, SessionLog& log, EventSink* extra,
                           const std::atomic<bool>* cancel,
                           const std::function<void(const std::string&)>& on_session = {});

// Continues a stopped or killed session. `overrides` carries the user's flags for this run
// (budgets, sandbox); provider settings come from the session unless overridden there.
struct ResumeOverrides {
  std::optional<int> max_steps;
  std::optional<bool> sandbox_enforce;
  std::optional<std::string> script;  // scripted provider: another file
};
Result<FixOutcome> resume_fix(SessionLog& log, const std::string& id_or_prefix,
                              const ResumeOverrides& overrides, EventSink* extra,
                              const std::atomic<bool>* cancel);

// Exit code of `m1 fix` for a stop reason: 0 submitted, 130 interrupted, 3 any other stop.
int exit_code_for(StopReason r);

// The second Ctrl-C exits without finishing the turn: if the session is still marked running,
// record it as stopped with reason `interrupted` (and a stop event), so `m1 sessions` says so.
// A session that already stopped (e.g. submitted while the patch was being written) is left as is.
Status mark_exited_on_interrupt(SessionLog& log, const std::string& session_id);
// The same for every session this process is running (batch runs: one per worker).
Status mark_own_sessions_exited_on_interrupt(SessionLog& log);

// Where a session's provider keeps its state between runs (the local provider's engine session):
// <state dir>/engine/<session id>.m1s, sidecars beside it as <id>.m1s.*. Removed when the task
// is submitted or its worktree is pruned.
std::filesystem::path provider_state_path(const std::string& session_id);

}  // namespace m1::agent
