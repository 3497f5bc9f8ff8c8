// agent/sessions.cpp: prune_sessions (see sessions.h for what is taken and what is kept).
#include "agent/sessions.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "agent/config.h"
#include "agent/fix.h"
#include "agent/git.h"

namespace fs = std::filesystem;

namespace m1::agent {

namespace {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

// Seconds since the store's "YYYY-MM-DDTHH:MM:SS.mmmZ"; -1 when it does not parse.
double age_seconds(const std::string& iso) {
  std::tm tm{};
  const char* end = strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return -1;
  return std::difftime(std::time(nullptr), timegm(&tm));
}

bool process_alive(long pid) {
  if (pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

bool is_under(const fs::path& p, const fs::path& dir) {
  std::error_code ec;
  fs::path a = fs::weakly_canonical(p, ec), b = fs::weakly_canonical(dir, ec);
  auto rel = a.lexically_relative(b);
  return !rel.empty() && *rel.begin() != ".." && *rel.begin() != ".";
}

// Empty when the session may be pruned under `o`; otherwise why it is kept.
std::string keep_reason(const SessionRecord& s, const PruneOptions& o) {
  if (o.older_than_days > 0) {
    double age = age_seconds(s.updated_at);
    if (age < 0) return "its last update time '" + s.updated_at + "' cannot be read";
    if (age < o.older_than_days * 86400)
      return "updated " + std::to_string(static_cast<int>(age / 86400)) + " day(s) ago, newer than --older-than";
  }
  if (s.status == "running") {
    const long pid = s.meta.value("pid", 0L);
    const std::string host = s.meta.value("host", "");
    if (pid <= 0) return "marked running and no process is recorded for it (it may be running)";
    if (host != host_name()) return "marked running on another host (" + host + ")";
    if (process_alive(pid)) return "still running (process " + std::to_string(pid) + ")";
    if (!o.resumable) return "killed while running; it can be resumed (--resumable to remove it anyway)";
    return "";
  }
  if (s.stop_reason == "submitted") return "";
  if (!o.resumable)
    return "stopped (" + (s.stop_reason.empty() ? s.status : s.stop_reason) +
           "); it can be resumed (--resumable to remove it anyway)";
  return "";
}

}  // namespace

void record_runner(SessionRecord& rec) {
  rec.meta["pid"] = static_cast<long>(getpid());
  rec.meta["host"] = host_name();
}

Result<std::vector<PruneEntry>> prune_sessions(SessionLog& log, const PruneOptions& o) {
  if (o.older_than_days < 0) return make_error("--older-than must be >= 0 days", 2);
  M1_ASSIGN_OR_RETURN(auto sessions, log.list(INT_MAX));
  const fs::path root = state_dir() / "worktrees";
  std::vector<PruneEntry> out;
  for (auto& s : sessions) {
    const fs::path wt = s.meta.value("worktree", "");
    std::error_code ec;
    if (wt.empty() || !fs::exists(wt, ec)) continue;
    PruneEntry e{s.id, wt.string(), false, ""};
    if (!is_under(wt, root)) {
      e.why = "its worktree is not under " + root.string() + "; not touched";
    } else {
      e.why = keep_reason(s, o);
    }
    if (!e.why.empty()) {
      out.push_back(e);
      continue;
    }
    e.removed = true;
    e.why = s.status == "running" ? "killed while running" : "stopped: " + s.stop_reason;
    if (o.dry_run) {
      out.push_back(e);
      continue;
    }
    auto st = remove_worktree(s.meta.value("git_repo", ""), wt, s.meta.value("branch", ""));
    if (fs::exists(wt, ec)) {
      e.removed = false;
      e.why = "could not remove it: " + (st.ok() ? ec.message() : st.error().message);
      out.push_back(e);
      continue;
    }
    if (!st.ok()) e.why += " (git: " + st.error().message + ")";
    fs::remove_all(state_dir() / "outputs" / s.id, ec);
    fs::path engine_state = provider_state_path(s.id);
    for (const auto& f : fs::directory_iterator(engine_state.parent_path(), ec))
      if (f.path().filename().string().rfind(engine_state.filename().string(), 0) == 0) fs::remove(f.path(), ec);
    s.meta["pruned_at"] = static_cast<long>(std::time(nullptr));
    if (auto u = log.update(s); !u.ok()) e.why += " (store not updated: " + u.error().message + ")";
    out.push_back(e);
  }
  return out;
}

}  // namespace m1::agent
