// agent/session_log.h: what the agent needs from the session store (memory::Store implements it
// through agent/store_log.cpp). Kept as an interface so the loop and runners do not depend on
// SQLite and tests can use the real store or a temp-dir one.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/events.h"
#include "common/result.h"

namespace m1::agent {

struct SessionRecord {
  std::string id;
  std::string created_at, updated_at;  // ISO-8601 UTC, set by the store
  std::string kind;          // fix | batch-fix
  std::string repo;          // the user's repository
  std::string task;          // problem statement
  std::string status;        // running | stopped
  std::string stop_reason;   // StopReason name once stopped
  int steps = 0;
  uint64_t input_tokens = 0, output_tokens = 0;
  nlohmann::json meta = nlohmann::json::object();  // worktree, base_commit, provider, budgets, state
};

struct StoredMessage {
  std::string role;
  nlohmann::json body;  // {"generation": g, "message": <engine::to_json(ChatMessage)>}
};

class SessionLog {
 public:
  virtual ~SessionLog() = default;
  virtual Status create(const SessionRecord& s) = 0;
  virtual Status update(const SessionRecord& s) = 0;
  virtual Result<SessionRecord> get(const std::string& id_or_prefix) = 0;
  virtual Result<std::vector<SessionRecord>> list(int limit) = 0;
  virtual Result<std::string> last_id() = 0;
  virtual Status append_event(const std::string& id, const std::string& type, const nlohmann::json& data) = 0;
  virtual Status append_message(const std::string& id, const std::string& role, const nlohmann::json& body) = 0;
  virtual Status record_tool_call(const std::string& id, const std::string& call_id, const std::string& name,
                                  const nlohmann::json& args, const std::string& result, bool is_error,
                                  double started, double finished) = 0;
  virtual Result<std::vector<StoredMessage>> messages(const std::string& id) = 0;
};

// Opens the default store (memory::Store::default_path(), or $M1_STORE when set).
Result<std::unique_ptr<SessionLog>> open_session_log(const std::string& path = "");

// Records events/messages/tool calls of one session as they happen. Store failures are reported
// once on stderr and do not stop the run (the agent's work matters more than its log).
class StoreSink : public EventSink {
 public:
  StoreSink(SessionLog& log, std::string session_id) : log_(log), id_(std::move(session_id)) {}
  void event(const Event& e) override;
  void message(const ChatMessage& m, int generation) override;
  void tool_call(const engine::ToolCall& c, const std::string& result, bool is_error, double s,
                 double f) override;

 private:
  void report(const Status& st);
  SessionLog& log_;
  std::string id_;
  bool warned_ = false;
};

// The current conversation of a session: the messages of the highest generation, in order.
Result<std::vector<ChatMessage>> load_conversation(SessionLog& log, const std::string& id);


// A new session id in the store's format: "YYYYMMDD-HHMMSS-mmm-xxxxxx" (UTC, random suffix).
std::string new_session_id();

}  // namespace m1::agent
