// agent/batch.h: `m1 fix --instances tasks.jsonl --workers N --out predictions.jsonl`.
// Each instance runs as its own recorded session in its own worktree (removed afterwards);
// predictions are appended and flushed one line per finished instance, so a crash keeps the
// finished ones. An instance already present in the output file is skipped (restartable).
#pragma once
#include <atomic>
#include <filesystem>

#include "agent/config.h"
#include "agent/session_log.h"

namespace m1::agent {

struct BatchOptions {
  std::filesystem::path instances;
  std::filesystem::path out;
  int workers = 1;
  AgentConfig config;
};

struct BatchSummary {
  int total = 0, skipped = 0, submitted = 0, failed = 0;  // failed: could not run at all
};

// `progress` (may be null) gets one human line per finished instance.
Result<BatchSummary> run_batch(const BatchOptions& o, SessionLog& log, std::FILE* progress,
                               const std::atomic<bool>* cancel);

}  // namespace m1::agent
