// memory::Store: the SQLite record of agent sessions (sessions, messages, events, tool calls with
// timings, engine-state snapshots), written as things happen so `m1 resume` can continue a task.
//
// Durability decision: WAL journal with synchronous=NORMAL, and every write is its own short
// transaction that has committed before the call returns. In WAL mode a committed transaction is
// in the WAL file (written with write(2), i.e. in the OS page cache) before COMMIT returns, so a
// killed process (kill -9, crash, OOM) loses nothing a call already reported; only a power loss
// or kernel crash may drop the last few transactions, which FULL would prevent at one fsync per
// event (too slow for per-event logging). Several processes (batch workers, `m1 serve`) share one
// file through WAL readers and a busy timeout; writes take the write lock up front
// (BEGIN IMMEDIATE) so they wait instead of failing with SQLITE_BUSY.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace m1::memory {

struct SessionInfo {
  std::string id;                      // empty on create_session: a new id is made
  std::string created_at, updated_at;  // ISO-8601 UTC with milliseconds, set by the store
  std::string kind;                    // "fix", "serve", ...
  std::string repo, task;
  std::string status = "running";      // running | stopped | finished
  std::string stop_reason;
  int64_t steps = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  nlohmann::json meta = nlohmann::json::object();
};

struct Event {
  int64_t seq = 0;  // 1, 2, ... per session
  std::string session_id;
  std::string type;
  std::string at;
  nlohmann::json payload;
};

struct StoredMessage {
  int64_t seq = 0;  // 1, 2, ... per session
  std::string role;
  nlohmann::json content;
};

struct ToolCallRecord {
  int64_t seq = 0;  // 1, 2, ... per session
  std::string call_id, name;
  nlohmann::json args, result;
  bool is_error = false;
  double started_unix = 0, finished_unix = 0;
};

struct Snapshot {
  int64_t seq = 0;
  std::filesystem::path file;
  int64_t token_count = 0;
  std::string at;
};

class Store {
 public:
  // Opens (creating folders and file as needed) and migrates the schema. Errors name the path:
  // a file that is not a database, or one written by a newer m1, is refused, never overwritten.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& db_path);
  // $M1_STATE_DIR/m1.db, else $XDG_STATE_HOME/m1/m1.db, else ~/.local/state/m1/m1.db.
  static std::filesystem::path default_path();
  static int schema_version();  // the version this build writes

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Returns the session's id: info.id when set (must be new), otherwise a fresh one,
  // "YYYYMMDD-HHMMSS-mmm-xxxxxx" (UTC; sorts by creation time; random suffix).
  Result<std::string> create_session(const SessionInfo& info);
  // Status, stop_reason, counters, meta, kind/repo/task; updated_at is set to now.
  Status update_session(const SessionInfo& info);
  // Exact id, else a unique prefix of one.
  Result<SessionInfo> get_session(const std::string& id_or_prefix);
  Result<std::vector<SessionInfo>> list_sessions(int limit = 50);  // newest first
  Result<std::optional<std::string>> last_session_id();           // newest created
  Status delete_session(const std::string& id);                   // with all its records

  // Appends return the new per-session seq once committed.
  Result<int64_t> append_event(const std::string& session_id, const std::string& type,
                               const nlohmann::json& payload);
  Result<int64_t> append_message(const std::string& session_id, const std::string& role,
                                 const nlohmann::json& content);
  Status record_tool_call(const std::string& session_id, const std::string& call_id,
                          const std::string& name, const nlohmann::json& args,
                          const nlohmann::json& result, bool is_error, double started_unix,
                          double finished_unix);

  Result<std::vector<Event>> events(const std::string& session_id, int64_t after_seq = 0);
  Result<std::vector<StoredMessage>> messages(const std::string& session_id);
  Result<std::vector<ToolCallRecord>> tool_calls(const std::string& session_id);

  // Index of engine-state snapshot files (the file itself is the engine's business).
  Status put_snapshot(const std::string& session_id, const std::filesystem::path& file,
                      int64_t token_count);
  Result<std::optional<std::pair<std::filesystem::path, int64_t>>> latest_snapshot(
      const std::string& session_id);
  Result<std::vector<Snapshot>> snapshots(const std::string& session_id);

  // PRAGMA integrity_check plus foreign-key check; the error lists the problems found.
  Status check_integrity();

  struct Impl;

 private:
  Store(std::filesystem::path path, std::unique_ptr<Impl> impl);
  std::filesystem::path path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace m1::memory
