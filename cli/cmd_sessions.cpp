// cli/cmd_sessions.cpp: `m1 sessions`: recorded agent sessions, newest first; with --prune, removes
// the worktrees of finished sessions (agent/sessions.h says which are taken).
#include <cstdlib>

#include "agent/session_log.h"
#include "agent/sessions.h"
#include "cli/command.h"

namespace m1::cli {
namespace {

int run_prune(const agent::PruneOptions& o, bool json, const std::string& store) {
  auto log = agent::open_session_log(store);
  if (!log.ok()) return fail(log.error()), exit_code();
  auto r = agent::prune_sessions(**log, o);
  if (!r.ok()) return fail(r.error()), exit_code();
  int removed = 0, failed = 0;
  for (const auto& e : *r) {
    removed += e.removed;
    failed += !e.removed && e.why.rfind("could not remove", 0) == 0;
    if (json) {
      nlohmann::json j = {{"id", e.id}, {"worktree", e.worktree}, {"removed", e.removed},
                          {"dry_run", o.dry_run}, {"why", e.why}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%-27s %-14s %s (%s)\n", e.id.c_str(),
                  e.removed ? (o.dry_run ? "would remove" : "removed") : "kept", e.worktree.c_str(), e.why.c_str());
    }
  }
  if (!json)
    std::printf("%d worktree(s) %s, %zu kept\n", removed, o.dry_run ? "would be removed" : "removed",
                r->size() - static_cast<size_t>(removed));
  return failed ? 1 : 0;
}

int run_sessions(int limit, bool json, const std::string& store) {
  auto log = agent::open_session_log(store);
  if (!log.ok()) return fail(log.error()), exit_code();
  auto list = (*log)->list(limit);
  if (!list.ok()) return fail(list.error()), exit_code();
  if (json) {
    for (const auto& s : *list) {
      nlohmann::json j = {{"id", s.id}, {"created_at", s.created_at}, {"updated_at", s.updated_at},
                          {"kind", s.kind}, {"repo", s.repo}, {"status", s.status},
                          {"stop_reason", s.stop_reason}, {"steps", s.steps},
                          {"input_tokens", s.input_tokens}, {"output_tokens", s.output_tokens},
                          {"worktree", s.meta.value("worktree", "")}};
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  }
  if (list->empty()) {
    std::printf("no sessions yet\n");
    return 0;
  }
  std::printf("%-27s %-9s %-8s %-13s %5s %9s  %s\n", "id", "kind", "status", "stop", "steps", "tokens", "repo / task");
  for (const auto& s : *list) {
    std::string task = s.task.substr(0, s.task.find('\n'));
    if (task.size() > 40) task = task.substr(0, 40) + "...";
    std::printf("%-27s %-9s %-8s %-13s %5d %9llu  %s: %s\n", s.id.c_str(), s.kind.c_str(), s.status.c_str(),
                s.stop_reason.empty() ? "-" : s.stop_reason.c_str(), s.steps,
                static_cast<unsigned long long>(s.input_tokens + s.output_tokens), s.repo.c_str(), task.c_str());
  }
  return 0;
}

}  // namespace

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto limit = std::make_shared<int>(30);
  auto json = std::make_shared<bool>(false);
  auto store = std::make_shared<std::string>();
  auto prune = std::make_shared<bool>(false);
  auto po = std::make_shared<agent::PruneOptions>();
  auto* sub = root.add_subcommand("sessions", "List recorded agent sessions (newest first); --prune cleans worktrees");
  sub->add_option("--limit", *limit, "how many")->check(CLI::PositiveNumber);
  sub->add_flag("--json", *json, "one JSON object per session");
  sub->add_option("--store", *store, "session store (default: the user's state folder)");
  sub->add_flag("--prune", *prune,
                "remove the worktrees (and saved outputs, engine state) of submitted sessions; "
                "sessions that can still be resumed are kept unless --resumable");
  auto* older = sub->add_option("--older-than", po->older_than_days,
                                "--prune: only sessions last updated at least DAYS ago")
                    ->check(CLI::Validator(
                        [](std::string& v) -> std::string {
                          char* end = nullptr;
                          double d = std::strtod(v.c_str(), &end);
                          if (v.empty() || *end != '\0' || !(d >= 0))
                            return "a number of days >= 0 (e.g. 7 or 0.5), got '" + v + "'";
                          return "";
                        },
                        "DAYS"));
  auto* resumable = sub->add_flag("--resumable", po->resumable,
                                  "--prune: also sessions that stopped without submitting, or were killed "
                                  "(their process is gone); they can no longer be resumed");
  auto* dry = sub->add_flag("--dry-run", po->dry_run, "--prune: only say what would be removed");
  for (auto* opt : {older, resumable, dry}) opt->needs(sub->get_option("--prune"));
  sub->callback([=] {
    set_exit_code(*prune ? run_prune(*po, *json, *store) : run_sessions(*limit, *json, *store));
  });
});

}  // namespace m1::cli
