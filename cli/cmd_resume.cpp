// cli/cmd_resume.cpp: `m1 resume <id>|--last`: continues a stopped or killed session from its
// recorded transcript, in the same worktree. Exit codes as `m1 fix`.
#include "agent/fix.h"
#include "agent/interrupt.h"
#include "cli/agent_cli.h"

namespace m1::cli {
namespace {

struct ResumeFlags {
  std::string id, sandbox, script, store;
  bool last = false, json = false;
  int max_steps = 0;
};

int run_resume(const ResumeFlags& f) {
  if (f.id.empty() == !f.last) return fail(make_error("m1 resume needs a session id or --last (one of them)", 2)), 2;
  auto log = agent::open_session_log(f.store);
  if (!log.ok()) return fail(log.error()), exit_code();
  std::string id = f.id;
  if (f.last) {
    auto last = (*log)->last_id();
    if (!last.ok()) return fail(last.error()), exit_code();
    id = *last;
  }
  agent::ResumeOverrides ov;
  if (f.max_steps) ov.max_steps = f.max_steps;
  if (!f.script.empty()) ov.script = f.script;
  if (!f.sandbox.empty()) {
    auto on = parse_sandbox_flag(f.sandbox);
    if (!on.ok()) return fail(on.error()), 2;
    ov.sandbox_enforce = *on;
  }
  OutputSinks sinks(f.json);
  sinks.set_session(id);
  agent::InterruptGuard guard(/*exiting_after_interrupt=*/true);
  agent::SessionLog* store = log->get();
  guard.on_exit_now([store, id] { (void)agent::mark_exited_on_interrupt(*store, id); });
  auto r = agent::resume_fix(**log, id, ov, &sinks.fan, guard.flag());
  if (!r.ok()) return fail(r.error()), exit_code();
  if (!f.json) {
    std::printf("\n%s", r->patch.empty() ? "(no changes)\n" : r->patch.c_str());
    std::printf("\nsession:  %s\nworktree: %s\nstop:     %s%s%s\n", r->session_id.c_str(), r->worktree.c_str(),
                agent::stop_reason_name(r->result.reason), r->result.detail.empty() ? "" : " - ",
                r->result.detail.c_str());
  }
  return agent::exit_code_for(r->result.reason);
}

}  // namespace

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto f = std::make_shared<ResumeFlags>();
  auto* sub = root.add_subcommand("resume", "Continue a stopped or killed agent session");
  sub->add_option("id", f->id, "session id (or a unique prefix)");
  sub->add_flag("--last", f->last, "the most recent session");
  sub->add_option("--max-steps", f->max_steps, "new step budget (total turns)")->check(CLI::PositiveNumber);
  sub->add_option("--sandbox", f->sandbox, "on | off (default: as the session was started)");
  sub->add_option("--script", f->script, "scripted provider: use this file instead");
  sub->add_flag("--json", f->json, "print events as JSON Lines on stdout");
  sub->add_option("--store", f->store, "session store (default: the user's state folder)");
  sub->callback([f] { set_exit_code(run_resume(*f)); });
});

}  // namespace m1::cli
