// agent/sessions.h: housekeeping of stored sessions: `m1 sessions --prune` removes the worktrees
// (and saved outputs and provider state) that single `m1 fix` runs leave under the state folder.
// Decision: a worktree is the only thing `m1 resume` cannot do without, so by default only
// sessions that can never be resumed usefully (submitted) lose theirs; stopped ones need
// `resumable`, and a session still marked running is taken only when the process that ran it is
// gone (a kill -9 leaves "running" behind), never while that process lives. Only folders under
// <state dir>/worktrees are ever removed: a path elsewhere in a (damaged) store is skipped.
#pragma once
#include <string>
#include <vector>

#include "agent/session_log.h"

namespace m1::agent {

struct PruneOptions {
  double older_than_days = 0;  // only sessions whose last update is at least this old
  bool resumable = false;      // also stopped (and dead running) sessions, which could be resumed
  bool dry_run = false;        // report what would be removed; remove nothing
};

struct PruneEntry {
  std::string id;
  std::string worktree;
  bool removed = false;  // (or would be, in a dry run)
  std::string why;       // why it was removed or kept
};

// One entry per session that still has its worktree, newest first.
Result<std::vector<PruneEntry>> prune_sessions(SessionLog& log, const PruneOptions& o);

// What the session row records about the process running it (meta "pid", "host"), set by
// run_fix/resume_fix; prune uses it to tell a live run from a killed one.
void record_runner(SessionRecord& rec);

}  // namespace m1::agent
