// memory::Store queries: events, messages, tool calls, snapshots, integrity check.
#include "memory/store.h"
#include "memory/store_impl.h"

namespace m1::memory {

namespace fs = std::filesystem;
using detail::parse_stored;
using detail::Stmt;
using nlohmann::json;

// ---- reads ----

Result<std::vector<Event>> Store::events(const std::string& session_id, int64_t after_seq) {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("SELECT seq, type, at, payload FROM events WHERE session_id = ?1 AND seq > ?2 "
                                     "ORDER BY seq"));
  Stmt st(s);
  st.bind(1, session_id).bind(2, after_seq);
  std::vector<Event> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    Event e;
    e.seq = st.i64(0);
    e.session_id = session_id;
    e.type = st.text(1);
    e.at = st.text(2);
    M1_ASSIGN_OR_RETURN(e.payload, parse_stored(st.text(3), impl_->where + ": event " + std::to_string(e.seq) +
                                                               " of session '" + session_id + "'"));
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return impl_->fail("cannot read events of session '" + session_id + "'");
  return out;
}

Result<std::vector<StoredMessage>> Store::messages(const std::string& session_id) {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("SELECT seq, role, content FROM messages WHERE session_id = ?1 ORDER BY seq"));
  Stmt st(s);
  st.bind(1, session_id);
  std::vector<StoredMessage> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    StoredMessage m;
    m.seq = st.i64(0);
    m.role = st.text(1);
    M1_ASSIGN_OR_RETURN(m.content, parse_stored(st.text(2), impl_->where + ": message " + std::to_string(m.seq) +
                                                               " of session '" + session_id + "'"));
    out.push_back(std::move(m));
  }
  if (rc != SQLITE_DONE) return impl_->fail("cannot read messages of session '" + session_id + "'");
  return out;
}

Result<std::vector<ToolCallRecord>> Store::tool_calls(const std::string& session_id) {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("SELECT seq, call_id, name, args, result, is_error, started_unix, finished_unix "
                                     "FROM tool_calls WHERE session_id = ?1 ORDER BY seq"));
  Stmt st(s);
  st.bind(1, session_id);
  std::vector<ToolCallRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    ToolCallRecord t;
    t.seq = st.i64(0);
    t.call_id = st.text(1);
    t.name = st.text(2);
    const std::string where = impl_->where + ": tool call " + std::to_string(t.seq) + " of session '" + session_id + "'";
    M1_ASSIGN_OR_RETURN(t.args, parse_stored(st.text(3), where));
    M1_ASSIGN_OR_RETURN(t.result, parse_stored(st.text(4), where));
    t.is_error = st.i64(5) != 0;
    t.started_unix = st.f64(6);
    t.finished_unix = st.f64(7);
    out.push_back(std::move(t));
  }
  if (rc != SQLITE_DONE) return impl_->fail("cannot read tool calls of session '" + session_id + "'");
  return out;
}

Result<std::vector<Snapshot>> Store::snapshots(const std::string& session_id) {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("SELECT seq, file, token_count, at FROM snapshots WHERE session_id = ?1 "
                                     "ORDER BY seq"));
  Stmt st(s);
  st.bind(1, session_id);
  std::vector<Snapshot> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(Snapshot{st.i64(0), st.text(1), st.i64(2), st.text(3)});
  if (rc != SQLITE_DONE) return impl_->fail("cannot read snapshots of session '" + session_id + "'");
  return out;
}

Result<std::optional<std::pair<fs::path, int64_t>>> Store::latest_snapshot(const std::string& session_id) {
  using Out = std::optional<std::pair<fs::path, int64_t>>;
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("SELECT file, token_count FROM snapshots WHERE session_id = ?1 "
                                     "ORDER BY seq DESC LIMIT 1"));
  Stmt st(s);
  st.bind(1, session_id);
  int rc = st.step();
  if (rc == SQLITE_ROW) return Out(std::make_pair(fs::path(st.text(0)), st.i64(1)));
  if (rc == SQLITE_DONE) return Out();
  return impl_->fail("cannot read snapshots of session '" + session_id + "'");
}

Status Store::check_integrity() {
  std::lock_guard lock(impl_->mu);
  std::string problems;
  for (const char* pragma : {"PRAGMA integrity_check", "PRAGMA foreign_key_check"}) {
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, impl_->prepare(pragma));
    Stmt st(s);
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) {
      std::string row = st.text(0);
      if (std::string(pragma) == "PRAGMA foreign_key_check") row = "orphan row in " + row;
      if (row != "ok") problems += (problems.empty() ? "" : "; ") + row;
    }
    if (rc != SQLITE_DONE) {
      // Extended result codes are on (SQLITE_CORRUPT_INDEX, ...): compare the primary code.
      int code = sqlite3_errcode(impl_->db) & 0xff;
      if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
        return make_error(impl_->where + ": integrity check failed: " + sqlite3_errmsg(impl_->db));
      }
      return impl_->fail(std::string("cannot run ") + pragma);
    }
  }
  if (!problems.empty()) return make_error(impl_->where + ": integrity check failed: " + problems);
  return {};
}

}  // namespace m1::memory
