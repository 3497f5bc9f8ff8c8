// cli/cmd_fix.cpp: `m1 fix`: one task (--repo + --issue/--issue-file) or a batch (--instances).
// Exit codes: 0 submitted, 3 stopped without submitting, 130 interrupted, 1 error, 2 usage.
#include <fstream>
#include <mutex>
#include <sstream>

#include "agent/batch.h"
#include "agent/fix.h"
#include "agent/interrupt.h"
#include "cli/agent_cli.h"

namespace m1::cli {
namespace {

struct FixFlags {
  std::string repo, issue, issue_file, provider, model, script, base_url, sandbox, base_commit;
  std::string instances, out, store, patch_out;
  int max_steps = 0, workers = 1;
  uint64_t max_tokens = 0;
  double max_seconds = 0;
  bool json = false;
};

Status apply_flags(const FixFlags& f, agent::AgentConfig& cfg) {
  if (!f.provider.empty()) cfg.provider.kind = f.provider;
  if (!f.model.empty()) cfg.provider.model = f.model;
  if (!f.script.empty()) {
    cfg.provider.script = f.script;
    if (f.provider.empty()) cfg.provider.kind = "scripted";
  }
  if (!f.base_url.empty()) cfg.provider.base_url = f.base_url;
  if (f.max_steps) cfg.budgets.max_steps = f.max_steps;
  if (f.max_tokens) cfg.budgets.max_tokens = f.max_tokens;
  if (f.max_seconds > 0) cfg.budgets.max_seconds = f.max_seconds;
  if (!f.sandbox.empty()) {
    M1_ASSIGN_OR_RETURN(bool on, parse_sandbox_flag(f.sandbox));
    cfg.sandbox.enforce = on;
  }
  return {};
}

Result<std::string> read_issue(const FixFlags& f) {
  if (!f.issue.empty() && !f.issue_file.empty())
    return make_error("give either --issue or --issue-file, not both", 2);
  if (!f.issue.empty()) return f.issue;
  if (f.issue_file.empty()) return make_error("m1 fix needs --issue TEXT or --issue-file FILE (or --instances)", 2);
  std::ifstream in(f.issue_file);
  if (!in) return make_error("cannot read --issue-file '" + f.issue_file + "'", 2);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run_batch_cmd(const FixFlags& f) {
  if (f.out.empty()) return fail(make_error("--instances needs --out predictions.jsonl", 2)), 2;
  auto cfg = agent::load_config("");
  if (!cfg.ok()) return fail(cfg.error()), exit_code();
  if (auto st = apply_flags(f, *cfg); !st.ok()) return fail(st.error()), exit_code();
  auto log = agent::open_session_log(f.store);
  if (!log.ok()) return fail(log.error()), exit_code();
  agent::InterruptGuard guard(/*exiting_after_interrupt=*/true);
  agent::SessionLog* store = log->get();
  guard.on_exit_now([store] { (void)agent::mark_own_sessions_exited_on_interrupt(*store); });
  agent::BatchOptions o{f.instances, f.out, f.workers, *cfg};
  auto sum = agent::run_batch(o, **log, stderr, guard.flag());
  if (!sum.ok()) return fail(sum.error()), exit_code();
  std::fprintf(stderr, "batch: %d instances, %d skipped (already in %s), %d submitted, %d failed to run\n",
               sum->total, sum->skipped, f.out.c_str(), sum->submitted, sum->failed);
  return guard.flag()->load() ? 130 : 0;
}

int run_fix_cmd(const FixFlags& f) {
  if (!f.instances.empty()) return run_batch_cmd(f);
  if (f.repo.empty()) return fail(make_error("m1 fix needs --repo PATH (or --instances FILE)", 2)), 2;
  auto issue = read_issue(f);
  if (!issue.ok()) return fail(issue.error()), exit_code();
  auto cfg = agent::load_config(f.repo);
  if (!cfg.ok()) return fail(cfg.error()), exit_code();
  if (auto st = apply_flags(f, *cfg); !st.ok()) return fail(st.error()), exit_code();
  auto log = agent::open_session_log(f.store);
  if (!log.ok()) return fail(log.error()), exit_code();
  OutputSinks sinks(f.json);
  agent::InterruptGuard guard(/*exiting_after_interrupt=*/true);
  // The session id, once it exists, for the second Ctrl-C's record (read on the watcher thread).
  auto session = std::make_shared<std::pair<std::mutex, std::string>>();
  agent::SessionLog* store = log->get();
  guard.on_exit_now([session, store] {
    std::string id;
    {
      std::lock_guard<std::mutex> l(session->first);
      id = session->second;
    }
    if (!id.empty()) (void)agent::mark_exited_on_interrupt(*store, id);
  });
  agent::FixRequest req;
  req.repo = f.repo;
  req.problem_statement = *issue;
  req.base_commit = f.base_commit;
  req.config = *cfg;
  auto r = agent::run_fix(req, **log, &sinks.fan, guard.flag(), [&](const std::string& id) {
    sinks.set_session(id);
    std::lock_guard<std::mutex> l(session->first);
    session->second = id;
  });
  if (!r.ok()) return fail(r.error()), exit_code();
  if (!f.patch_out.empty()) {
    std::ofstream po(f.patch_out);
    po << r->patch;
  }
  if (!f.json) {
    std::printf("\n%s", r->patch.empty() ? "(no changes)\n" : r->patch.c_str());
    std::printf("\nsession:  %s (m1 resume %s)\nworktree: %s\nstop:     %s%s%s\n", r->session_id.c_str(),
                r->session_id.c_str(), r->worktree.c_str(), agent::stop_reason_name(r->result.reason),
                r->result.detail.empty() ? "" : " - ", r->result.detail.c_str());
    if (!r->result.summary.empty()) std::printf("summary:  %s\n", r->result.summary.c_str());
  }
  return agent::exit_code_for(r->result.reason);
}

}  // namespace

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto f = std::make_shared<FixFlags>();
  auto* sub = root.add_subcommand("fix", "Fix an issue in a repository with the agent (isolated git worktree)");
  sub->add_option("--repo", f->repo, "repository (git work tree or plain folder)");
  sub->add_option("--issue", f->issue, "the issue text");
  sub->add_option("--issue-file", f->issue_file, "file holding the issue text");
  sub->add_option("--base-commit", f->base_commit, "commit to start from (default HEAD)");
  sub->add_option("--provider", f->provider, "local | openai | scripted")
      ->check(CLI::IsMember({"local", "openai", "scripted"}));
  sub->add_option("--model", f->model, "local: model folder; openai: model name");
  sub->add_option("--script", f->script, "scripted provider: JSON/JSONL file of turns");
  sub->add_option("--base-url", f->base_url, "openai: endpoint base URL (e.g. http://127.0.0.1:8000/v1)");
  sub->add_option("--max-steps", f->max_steps, "model turns before stopping (step_limit)")->check(CLI::PositiveNumber);
  sub->add_option("--max-tokens", f->max_tokens, "input+output tokens before stopping (token_limit)");
  sub->add_option("--max-seconds", f->max_seconds, "wall time before stopping (time_limit)");
  sub->add_option("--sandbox", f->sandbox, "on (default) | off: run commands unconfined (your decision)");
  sub->add_flag("--json", f->json, "print events as JSON Lines on stdout");
  sub->add_option("--patch-out", f->patch_out, "also write the final patch to this file");
  sub->add_option("--instances", f->instances, "batch: SWE-bench-style tasks.jsonl");
  sub->add_option("--workers", f->workers, "batch: parallel tasks")->check(CLI::PositiveNumber);
  sub->add_option("--out", f->out, "batch: predictions.jsonl to append to");
  sub->add_option("--store", f->store, "session store (default: the user's state folder)");
  sub->callback([f] { set_exit_code(run_fix_cmd(*f)); });
});

}  // namespace m1::cli
