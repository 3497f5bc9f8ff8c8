// agent/fix.cpp: run_fix / resume_fix. Everything that can fail on user input (provider settings,
// sandbox availability, repo, commit) is checked before the worktree is made, so a bad flag
// leaves nothing behind.
#include "agent/fix.h"

#include <unistd.h>

#include "agent/git.h"
#include "agent/prompt.h"
#include "agent/sessions.h"
#include "tools/builtin.h"
#ifdef M1_HAVE_MCP
#include "mcp/client_manager.h"
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::agent {

int exit_code_for(StopReason r) {
  if (r == StopReason::Submitted) return 0;
  if (r == StopReason::Interrupted) return 130;
  return 3;
}

Status mark_exited_on_interrupt(SessionLog& log, const std::string& session_id) {
  M1_ASSIGN_OR_RETURN(auto rec, log.get(session_id));
  if (rec.status != "running") return {};
  const std::string detail = "second interrupt: exited at once, without finishing the turn";
  rec.status = "stopped";
  rec.stop_reason = stop_reason_name(StopReason::Interrupted);
  rec.meta["stop_detail"] = detail;
  M1_TRY(log.update(rec));
  return log.append_event(session_id, "stop", {{"reason", rec.stop_reason}, {"detail", detail}});
}

Status mark_own_sessions_exited_on_interrupt(SessionLog& log) {
  M1_ASSIGN_OR_RETURN(auto sessions, log.list(1000));  // newest first; a batch's are among them
  const long self = static_cast<long>(getpid());
  for (const auto& s : sessions)
    if (s.status == "running" && s.meta.value("pid", 0L) == self) M1_TRY(mark_exited_on_interrupt(log, s.id));
  return {};
}

fs::path provider_state_path(const std::string& session_id) {
  return state_dir() / "engine" / (session_id + ".m1s");
}

namespace {

// Keeps the session row current: counters at each turn end, the stop reason at the end.
class SessionUpdater : public EventSink {
 public:
  SessionUpdater(SessionLog& log, SessionRecord& rec) : log_(log), rec_(rec) {}
  void event(const Event& e) override {
    if (e.type != "turn_end" && e.type != "stop") return;
    if (e.data.contains("state")) {
      RunState st = RunState::from_json(e.data["state"]);
      rec_.steps = st.turns;
      rec_.input_tokens = st.usage.input_tokens;
      rec_.output_tokens = st.usage.output_tokens;
      rec_.meta["state"] = e.data["state"];
    }
    if (e.type == "stop") {
      rec_.status = "stopped";
      rec_.stop_reason = e.data.value("reason", "");
      rec_.meta["stop_detail"] = e.data.value("detail", "");
    }
    (void)log_.update(rec_);
  }

 private:
  SessionLog& log_;
  SessionRecord& rec_;
};

Result<tools::BuiltinToolsOptions> tool_options(const AgentConfig& cfg, const std::string& id) {
  tools::BuiltinToolsOptions o;
  if (cfg.sandbox.enforce) {
    auto st = sandbox::check_available();
    if (!st.ok())
      return make_error("the sandbox cannot confine commands here: " + st.error().message +
                        "; pass --sandbox off to run them unconfined (your decision; it is logged)");
  }
  o.policy.mode = cfg.sandbox.enforce ? sandbox::Mode::Enforce : sandbox::Mode::Off;
  o.policy.network = cfg.sandbox.network;
  o.default_timeout_s = cfg.sandbox.shell_timeout_s;
  o.policy.env = tools::default_command_env();  // PYTHONDONTWRITEBYTECODE=1 among them
  o.full_output_dir = state_dir() / "outputs" / id;
  return o;
}

json provider_meta(const ProviderOptions& p) {  // never the API key
  return {{"kind", p.kind}, {"model", p.model}, {"base_url", p.base_url}, {"script", p.script},
          {"chat_template", p.chat_template}, {"temperature", p.temperature}, {"seed", p.seed},
          {"max_output_tokens", p.max_output_tokens}};
}

struct Job {
  SessionRecord rec;
  AgentConfig cfg;
  fs::path worktree;
  std::string base;
  std::vector<ChatMessage> conv;
  RunState state;
  bool fresh = true;
  bool keep_state = true;  // provider state for `m1 resume` (batch runs remove the worktree: none)
};

Result<FixOutcome> drive(Job& job, std::unique_ptr<Provider> provider, const tools::BuiltinToolsOptions& topts,
                         SessionLog& log, EventSink* extra, const std::atomic<bool>* cancel) {
  if (job.keep_state) provider->set_state_path(provider_state_path(job.rec.id));
  if (!job.fresh) provider->on_resume(job.state.turns);
  tools::Registry registry;
  tools::register_builtin_tools(registry, topts);
  add_submit_tool(registry);
  FanoutSink fan;
  StoreSink store(log, job.rec.id);
  SessionUpdater updater(log, job.rec);
  fan.add(&store);
  fan.add(&updater);
  if (extra) fan.add(extra);
  json start = {{"session", job.rec.id}, {"kind", job.rec.kind}, {"workspace", job.worktree.string()},
                {"repo", job.rec.repo}, {"base_commit", job.base}, {"provider", provider->label()},
                {"scripted", !provider->is_model()}, {"sandbox", job.cfg.sandbox.enforce ? "on" : "off"},
                {"budgets", to_json(job.cfg.budgets)}, {"resumed", !job.fresh}};
  fan.event({job.fresh ? "session_start" : "session_resume", start});
  if (!job.cfg.sandbox.enforce)
    fan.event({"warning", {{"message", "sandbox is off by the user's choice: commands run unconfined"}}});
#ifdef M1_HAVE_MCP
  // MCP servers the user configured join the registry as `<server>__<tool>`; they run outside
  // the sandbox (they are the user's own programs). A server that fails to start is reported
  // and skipped, so one broken entry does not block the task.
  std::unique_ptr<mcp::ClientManager> mcp_servers;
  if (!job.cfg.mcp_servers.empty()) {
    M1_ASSIGN_OR_RETURN(auto servers, mcp::parse_mcp_servers(json{{"mcpServers", job.cfg.mcp_servers}}));
    mcp::ClientOptions co;
    co.roots = {json{{"uri", "file://" + job.worktree.string()}, {"name", "workspace"}}};
    mcp_servers = std::make_unique<mcp::ClientManager>(co);
    for (const auto& s : servers) {
      if (s.disabled) continue;
      auto st = mcp_servers->add(s, registry);
      fan.event({st.ok() ? "mcp_server" : "warning",
                 {{"message", st.ok() ? "MCP server '" + s.name + "' connected"
                                      : "MCP server '" + s.name + "' not used: " + st.error().message}}});
    }
  }
#endif
  if (job.fresh)
    for (const auto& m : job.conv) fan.message(m, job.state.generation);
  LoopDeps deps;
  deps.provider = provider.get();
  deps.registry = &registry;
  deps.tool_ctx.workspace = job.worktree;
  deps.budgets = job.cfg.budgets;
  deps.sink = &fan;
  deps.cancel = cancel;
  FixOutcome out;
  out.result = run_loop(deps, job.conv, job.state);
  // A submitted task is never resumed: its provider state would only take disk space.
  if (out.result.reason == StopReason::Submitted || !job.keep_state) provider->discard_state();
  out.session_id = job.rec.id;
  out.worktree = job.worktree;
  out.state = job.state;
  out.provider_label = provider->label();
  auto patch = diff_since(job.worktree, job.base);
  if (patch.ok()) {
    out.patch = *patch;
  } else {
    fan.event({"error", {{"message", "could not compute the patch: " + patch.error().message}}});
  }
  fan.event({"patch", {{"patch", out.patch}, {"bytes", out.patch.size()}, {"summary", out.result.summary}}});
  job.rec.meta["patch"] = out.patch;
  job.rec.meta["summary"] = out.result.summary;
  (void)log.update(job.rec);
  return out;
}

}  // namespace

Result<FixOutcome> run_fix(const FixRequest& req, SessionLog& log, EventSink* extra,
                           const std::atomic<bool>* cancel,
                           const std::function<void(const std::string&)>& on_session) {
  if (req.problem_statement.find_first_not_of(" \n\t") == std::string::npos)
    return make_error("the issue text is empty; give --issue TEXT or --issue-file FILE", 2);
  Job job;
  job.cfg = req.config;
  job.rec.id = new_session_id();
  job.keep_state = req.keep_worktree;
  M1_ASSIGN_OR_RETURN(auto provider, make_provider(job.cfg.provider));
  M1_ASSIGN_OR_RETURN(auto topts, tool_options(job.cfg, job.rec.id));
  M1_ASSIGN_OR_RETURN(fs::path repo, materialize_repo(req.repo, state_dir() / "repos"));
  M1_ASSIGN_OR_RETURN(job.base, resolve_commit(repo, req.base_commit.empty() ? "HEAD" : req.base_commit));
  job.worktree = state_dir() / "worktrees" / job.rec.id;
  std::string branch = "m1/" + job.rec.id;
  M1_TRY(add_worktree(repo, job.base, job.worktree, branch));
  job.rec.kind = req.kind;
  job.rec.repo = fs::absolute(req.repo).string();
  job.rec.task = req.problem_statement;
  job.rec.status = "running";
  job.rec.meta = {{"worktree", job.worktree.string()}, {"git_repo", repo.string()}, {"branch", branch},
                  {"base_commit", job.base}, {"instance_id", req.instance_id},
                  {"provider", provider_meta(job.cfg.provider)}, {"budgets", to_json(job.cfg.budgets)},
                  {"sandbox", {{"enforce", job.cfg.sandbox.enforce}, {"network", job.cfg.sandbox.network},
                               {"shell_timeout_s", job.cfg.sandbox.shell_timeout_s}}},
                  {"state", job.state.to_json()}};
  record_runner(job.rec);
  auto created = log.create(job.rec);
  if (!created.ok()) {
    (void)remove_worktree(repo, job.worktree, branch);
    return created.error();
  }
  if (on_session) on_session(job.rec.id);
  job.conv = {ChatMessage::system(fix_system_prompt(collect_agents_md(job.worktree, job.worktree))),
              ChatMessage::user(fix_task_message(req.problem_statement))};
  auto out = drive(job, std::move(provider), topts, log, extra, cancel);
  if (!req.keep_worktree) (void)remove_worktree(repo, job.worktree, branch);
  return out;
}

Result<FixOutcome> resume_fix(SessionLog& log, const std::string& id_or_prefix,
                              const ResumeOverrides& ov, EventSink* extra, const std::atomic<bool>* cancel) {
  Job job;
  M1_ASSIGN_OR_RETURN(job.rec, log.get(id_or_prefix));
  const json& meta = job.rec.meta;
  job.worktree = meta.value("worktree", "");
  job.base = meta.value("base_commit", "");
  std::error_code ec;
  if (job.worktree.empty() || !fs::is_directory(job.worktree, ec))
    return make_error("session " + job.rec.id + " cannot be resumed: its worktree '" + job.worktree.string() +
                      "' is gone" + (meta.contains("pruned_at") ? " (removed by `m1 sessions --prune`)" : ""), 1);
  M1_ASSIGN_OR_RETURN(job.cfg, load_config(""));  // user config + environment (API keys)
  const json& p = meta.value("provider", json::object());
  job.cfg.provider.kind = p.value("kind", job.cfg.provider.kind);
  job.cfg.provider.model = p.value("model", job.cfg.provider.model);
  if (!p.value("base_url", "").empty()) job.cfg.provider.base_url = p.value("base_url", "");
  job.cfg.provider.script = ov.script.value_or(p.value("script", ""));
  job.cfg.provider.chat_template = p.value("chat_template", "pinned");
  // Sampling as the task started, so a resumed greedy run continues exactly as an uninterrupted one.
  job.cfg.provider.temperature = p.value("temperature", job.cfg.provider.temperature);
  job.cfg.provider.seed = p.value("seed", job.cfg.provider.seed);
  job.cfg.provider.max_output_tokens = p.value("max_output_tokens", job.cfg.provider.max_output_tokens);
  M1_TRY(budgets_from_json(meta.value("budgets", json::object()), job.cfg.budgets));
  if (ov.max_steps) job.cfg.budgets.max_steps = *ov.max_steps;
  const json& sb = meta.value("sandbox", json::object());
  job.cfg.sandbox.enforce = ov.sandbox_enforce.value_or(sb.value("enforce", true));
  job.cfg.sandbox.network = sb.value("network", false);
  job.cfg.sandbox.shell_timeout_s = sb.value("shell_timeout_s", 120.0);
  job.state = RunState::from_json(meta.value("state", json::object()));
  M1_ASSIGN_OR_RETURN(auto provider, make_provider(job.cfg.provider));
  M1_ASSIGN_OR_RETURN(auto topts, tool_options(job.cfg, job.rec.id));
  M1_ASSIGN_OR_RETURN(job.conv, load_conversation(log, job.rec.id));
  if (job.conv.empty()) return make_error("session " + job.rec.id + " has no recorded messages");
  job.fresh = false;
  // A kill can land between a model turn and its tool results: answer the dangling calls.
  const ChatMessage& last = job.conv.back();
  if (last.role == Role::Assistant && !last.tool_calls.empty()) {
    std::vector<engine::ToolResult> rs;
    for (const auto& c : last.tool_calls)
      rs.push_back({c.id, c.name, "error: not run: the session stopped before this call finished; "
                                  "run it again if it is still needed", true});
    job.conv.push_back(ChatMessage::tool(rs));
    (void)log.append_message(job.rec.id, "tool", {{"generation", job.state.generation},
                                                  {"message", engine::to_json(job.conv.back())}});
  } else if (last.role == Role::Assistant) {
    job.conv.push_back(ChatMessage::user("The task was resumed. Continue, and call submit when done."));
    (void)log.append_message(job.rec.id, "user", {{"generation", job.state.generation},
                                                  {"message", engine::to_json(job.conv.back())}});
  }
  // Turns already completed are the assistant messages recorded (the row may lag after a kill).
  int assistants = 0;
  for (const auto& m : job.conv) assistants += m.role == Role::Assistant;
  if (job.state.generation == 0) job.state.turns = std::max(job.state.turns, assistants);
  job.rec.status = "running";
  record_runner(job.rec);
  job.rec.meta["sandbox"]["enforce"] = job.cfg.sandbox.enforce;
  job.rec.meta["budgets"] = to_json(job.cfg.budgets);
  (void)log.update(job.rec);
  return drive(job, std::move(provider), topts, log, extra, cancel);
}

}  // namespace m1::agent
