// SQLite implementation of memory::Store (see store.h for the durability and locking decisions).
// One connection per Store behind one mutex; statements are prepared once and cached by SQL text.
// Per-session seq numbers are computed inside the write transaction (MAX+1 under the write lock),
// so writers in several processes never collide.
#include "memory/store.h"
#include "memory/store_impl.h"

#include <pwd.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>

namespace m1::memory {

namespace fs = std::filesystem;
using nlohmann::json;

std::string detail::now_iso() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

using detail::now_iso;
using detail::dump_json;
using detail::Stmt;
using detail::Txn;

namespace {

// Schema migrations: entry i moves user_version i -> i+1. Never edit a shipped entry; append.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT '',
  repo TEXT NOT NULL DEFAULT '',
  task TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'running',
  stop_reason TEXT NOT NULL DEFAULT '',
  steps INTEGER NOT NULL DEFAULT 0,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_by_created ON sessions(created_at, id);
CREATE TABLE events (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  at TEXT NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE messages (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  role TEXT NOT NULL,
  at TEXT NOT NULL,
  content TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE tool_calls (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  at TEXT NOT NULL,
  call_id TEXT NOT NULL,
  name TEXT NOT NULL,
  args TEXT NOT NULL,
  result TEXT NOT NULL,
  is_error INTEGER NOT NULL,
  started_unix REAL NOT NULL,
  finished_unix REAL NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE snapshots (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  file TEXT NOT NULL,
  token_count INTEGER NOT NULL,
  at TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));
constexpr int kBusyTimeoutMs = 30000;

}  // namespace

namespace {

constexpr const char* kSessionColumns =
    "id, created_at, updated_at, kind, repo, task, status, stop_reason, steps, input_tokens, "
    "output_tokens, meta";

SessionInfo read_session(const Stmt& st) {
  SessionInfo s;
  s.id = st.text(0);
  s.created_at = st.text(1);
  s.updated_at = st.text(2);
  s.kind = st.text(3);
  s.repo = st.text(4);
  s.task = st.text(5);
  s.status = st.text(6);
  s.stop_reason = st.text(7);
  s.steps = st.i64(8);
  s.input_tokens = st.i64(9);
  s.output_tokens = st.i64(10);
  s.meta = json::parse(st.text(11), nullptr, false);
  if (s.meta.is_discarded()) s.meta = json::object();
  return s;
}

bool valid_status(const std::string& s) { return s == "running" || s == "stopped" || s == "finished"; }

}  // namespace

Store::Store(fs::path path, std::unique_ptr<Impl> impl) : path_(std::move(path)), impl_(std::move(impl)) {}
Store::~Store() = default;

int Store::schema_version() { return kSchemaVersion; }

fs::path Store::default_path() {
  if (const char* d = std::getenv("M1_STATE_DIR"); d && *d) return fs::path(d) / "m1.db";
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return fs::path(x) / "m1" / "m1.db";
  std::string home;
  if (const char* h = std::getenv("HOME"); h && *h) {
    home = h;
  } else if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) {
    home = pw->pw_dir;
  }
  return fs::path(home) / ".local" / "state" / "m1" / "m1.db";
}

Result<std::unique_ptr<Store>> Store::open(const fs::path& db_path) {
  auto im = std::make_unique<Impl>();
  im->where = "session store " + db_path.string();
  if (db_path.empty()) return make_error("session store: empty database path");
  std::error_code ec;
  if (db_path.has_parent_path()) {
    fs::create_directories(db_path.parent_path(), ec);
    if (ec) return make_error(im->where + ": cannot create folder " + db_path.parent_path().string() + ": " + ec.message());
  }
  if (fs::is_directory(db_path, ec)) return make_error(im->where + ": is a folder, expected a database file");
  if (sqlite3_open_v2(db_path.c_str(), &im->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return im->fail("cannot open");
  }
  sqlite3_extended_result_codes(im->db, 1);
  sqlite3_busy_timeout(im->db, kBusyTimeoutMs);

  // The first statement reads the header: a file that is not a database fails here, either while
  // preparing (schema read) or while stepping.
  auto unusable = [&]() -> std::optional<Error> {
    int code = sqlite3_errcode(im->db);
    if (code != SQLITE_NOTADB && code != SQLITE_CORRUPT) return std::nullopt;
    return make_error(im->where + ": not a usable SQLite database (" + sqlite3_errmsg(im->db) +
                      "); move the file away to start a new store");
  };
  auto jm = im->prepare("PRAGMA journal_mode = WAL");
  if (!jm.ok()) {
    if (auto e = unusable()) return *e;
    return jm.error();
  }
  {
    Stmt st(jm.value());
    if (st.step() != SQLITE_ROW) {
      if (auto e = unusable()) return *e;
      return im->fail("cannot switch to WAL journal mode");
    }
    if (st.text(0) != "wal") {
      return make_error(im->where + ": the file system does not support WAL journal mode (got '" +
                        st.text(0) + "'); put the store on a local disk");
    }
  }
  M1_TRY(im->exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", "cannot set pragmas"));

  // Migrate under the write lock so two processes opening a new file do not both create tables.
  {
    Txn txn(*im);
    M1_TRY(txn.begin());
    int64_t version = 0, tables = 0;
    {
      M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, im->prepare("PRAGMA user_version"));
      Stmt st(s);
      if (st.step() != SQLITE_ROW) return im->fail("cannot read the schema version");
      version = st.i64(0);
    }
    {
      M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, im->prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"));
      Stmt st(s);
      if (st.step() != SQLITE_ROW) return im->fail("cannot read the schema");
      tables = st.i64(0);
    }
    if (version > kSchemaVersion) {
      return make_error(im->where + ": written by a newer m1 (schema version " + std::to_string(version) +
                        ", this build knows up to " + std::to_string(kSchemaVersion) + ")");
    }
    if (version == 0 && tables > 0) {
      return make_error(im->where + ": is an SQLite database of something else (it has " +
                        std::to_string(tables) + " tables but no m1 schema version); refusing to modify it");
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
      M1_TRY(im->exec(kMigrations[v], "migration to schema version " + std::to_string(v + 1) + " failed"));
    }
    if (version != kSchemaVersion) {
      M1_TRY(im->exec("PRAGMA user_version = " + std::to_string(kSchemaVersion), "cannot set the schema version"));
    }
    M1_TRY(txn.commit());
  }
  return std::unique_ptr<Store>(new Store(db_path, std::move(im)));
}

Result<std::string> Store::create_session(const SessionInfo& info) {
  if (!valid_status(info.status)) {
    return make_error(impl_->where + ": session status must be running, stopped or finished, got '" + info.status + "'");
  }
  std::lock_guard lock(impl_->mu);
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::string at = now_iso();
    std::string id = info.id;
    if (id.empty()) {
      // at = "YYYY-MM-DDTHH:MM:SS.mmmZ" -> "YYYYMMDD-HHMMSS-mmm-xxxxxx"
      char suffix[8];
      std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(impl_->rng() & 0xffffff));
      id = at.substr(0, 4) + at.substr(5, 2) + at.substr(8, 2) + "-" + at.substr(11, 2) + at.substr(14, 2) +
           at.substr(17, 2) + "-" + at.substr(20, 3) + "-" + suffix;
    }
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                        impl_->prepare("INSERT INTO sessions (id, created_at, updated_at, kind, repo, task, status, "
                                       "stop_reason, steps, input_tokens, output_tokens, meta) "
                                       "VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"));
    Stmt st(s);
    st.bind(1, id).bind(2, at).bind(3, info.kind).bind(4, info.repo).bind(5, info.task).bind(6, info.status);
    st.bind(7, info.stop_reason).bind(8, info.steps).bind(9, info.input_tokens).bind(10, info.output_tokens);
    st.bind(11, dump_json(info.meta.is_null() ? json::object() : info.meta));
    int rc = st.step();
    if (rc == SQLITE_DONE) return id;
    if (sqlite3_extended_errcode(impl_->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
      if (!info.id.empty()) return make_error(impl_->where + ": a session with id '" + id + "' already exists");
      continue;  // random suffix collided: draw again
    }
    return impl_->fail("cannot create a session");
  }
  return make_error(impl_->where + ": could not find a free session id");
}

Status Store::update_session(const SessionInfo& info) {
  if (!valid_status(info.status)) {
    return make_error(impl_->where + ": session status must be running, stopped or finished, got '" + info.status + "'");
  }
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("UPDATE sessions SET updated_at = ?2, kind = ?3, repo = ?4, task = ?5, "
                                     "status = ?6, stop_reason = ?7, steps = ?8, input_tokens = ?9, "
                                     "output_tokens = ?10, meta = ?11 WHERE id = ?1"));
  Stmt st(s);
  st.bind(1, info.id).bind(2, now_iso()).bind(3, info.kind).bind(4, info.repo).bind(5, info.task);
  st.bind(6, info.status).bind(7, info.stop_reason).bind(8, info.steps).bind(9, info.input_tokens);
  st.bind(10, info.output_tokens).bind(11, dump_json(info.meta.is_null() ? json::object() : info.meta));
  M1_TRY(impl_->run(st, "cannot update session '" + info.id + "'"));
  if (sqlite3_changes(impl_->db) == 0) return make_error(impl_->where + ": no session '" + info.id + "'");
  return {};
}

Result<SessionInfo> Store::get_session(const std::string& id_or_prefix) {
  if (id_or_prefix.empty()) return make_error(impl_->where + ": empty session id");
  std::lock_guard lock(impl_->mu);
  {
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                        impl_->prepare(std::string("SELECT ") + kSessionColumns + " FROM sessions WHERE id = ?1"));
    Stmt st(s);
    st.bind(1, id_or_prefix);
    int rc = st.step();
    if (rc == SQLITE_ROW) return read_session(st);
    if (rc != SQLITE_DONE) return impl_->fail("cannot read session '" + id_or_prefix + "'");
  }
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare(std::string("SELECT ") + kSessionColumns +
                                     " FROM sessions WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6"));
  Stmt st(s);
  st.bind(1, id_or_prefix);
  std::vector<SessionInfo> found;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) found.push_back(read_session(st));
  if (rc != SQLITE_DONE) return impl_->fail("cannot look up session prefix '" + id_or_prefix + "'");
  if (found.empty()) return make_error(impl_->where + ": no session matches '" + id_or_prefix + "'");
  if (found.size() > 1) {
    std::string ids;
    for (std::size_t i = 0; i < found.size() && i < 5; ++i) ids += (i ? ", " : "") + found[i].id;
    if (found.size() > 5) ids += ", ...";
    return make_error(impl_->where + ": '" + id_or_prefix + "' is ambiguous; it matches " + ids);
  }
  return found[0];
}

Result<std::vector<SessionInfo>> Store::list_sessions(int limit) {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare(std::string("SELECT ") + kSessionColumns +
                                     " FROM sessions ORDER BY created_at DESC, id DESC LIMIT ?1"));
  Stmt st(s);
  st.bind(1, static_cast<int64_t>(limit < 0 ? -1 : limit));
  std::vector<SessionInfo> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_session(st));
  if (rc != SQLITE_DONE) return impl_->fail("cannot list sessions");
  return out;
}

Result<std::optional<std::string>> Store::last_session_id() {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                      impl_->prepare("SELECT id FROM sessions ORDER BY created_at DESC, id DESC LIMIT 1"));
  Stmt st(s);
  int rc = st.step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(st.text(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return impl_->fail("cannot find the last session");
}

Status Store::delete_session(const std::string& id) {
  std::lock_guard lock(impl_->mu);
  M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, impl_->prepare("DELETE FROM sessions WHERE id = ?1"));
  Stmt st(s);
  st.bind(1, id);
  M1_TRY(impl_->run(st, "cannot delete session '" + id + "'"));
  if (sqlite3_changes(impl_->db) == 0) return make_error(impl_->where + ": no session '" + id + "'");
  return {};
}

// Shared shape of the per-session appends: one IMMEDIATE transaction that checks the session,
// numbers the row, inserts it and touches updated_at.
template <class BindRest>
static Result<int64_t> append_row(Store::Impl& im, const std::string& table, const std::string& sql,
                                  const std::string& sid, BindRest&& bind_rest) {
  std::lock_guard lock(im.mu);
  Txn txn(im);
  M1_TRY(txn.begin());
  M1_ASSIGN_OR_RETURN(bool exists, im.session_exists(sid));
  if (!exists) return make_error(im.where + ": no session '" + sid + "'");
  M1_ASSIGN_OR_RETURN(int64_t seq, im.next_seq(table, sid));
  const std::string at = now_iso();
  {
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, im.prepare(sql));
    Stmt st(s);
    st.bind(1, sid).bind(2, seq).bind(3, at);
    bind_rest(st);
    M1_TRY(im.run(st, "cannot append to " + table + " of session '" + sid + "'"));
  }
  M1_TRY(im.touch(sid, at));
  M1_TRY(txn.commit());
  return seq;
}

Result<int64_t> Store::append_event(const std::string& session_id, const std::string& type, const json& payload) {
  return append_row(*impl_, "events",
                    "INSERT INTO events (session_id, seq, at, type, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
                    session_id, [&](Stmt& st) { st.bind(4, type).bind(5, dump_json(payload)); });
}

Result<int64_t> Store::append_message(const std::string& session_id, const std::string& role, const json& content) {
  return append_row(*impl_, "messages",
                    "INSERT INTO messages (session_id, seq, at, role, content) VALUES (?1, ?2, ?3, ?4, ?5)",
                    session_id, [&](Stmt& st) { st.bind(4, role).bind(5, dump_json(content)); });
}

Status Store::record_tool_call(const std::string& session_id, const std::string& call_id, const std::string& name,
                               const json& args, const json& result, bool is_error, double started_unix,
                               double finished_unix) {
  auto r = append_row(*impl_, "tool_calls",
                      "INSERT INTO tool_calls (session_id, seq, at, call_id, name, args, result, is_error, "
                      "started_unix, finished_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                      session_id, [&](Stmt& st) {
                        st.bind(4, call_id).bind(5, name).bind(6, dump_json(args)).bind(7, dump_json(result));
                        st.bind(8, static_cast<int64_t>(is_error)).bind(9, started_unix).bind(10, finished_unix);
                      });
  if (!r.ok()) return r.error();
  return {};
}

Status Store::put_snapshot(const std::string& session_id, const fs::path& file, int64_t token_count) {
  auto r = append_row(*impl_, "snapshots",
                      "INSERT INTO snapshots (session_id, seq, at, file, token_count) VALUES (?1, ?2, ?3, ?4, ?5)",
                      session_id, [&](Stmt& st) { st.bind(4, file.string()).bind(5, token_count); });
  if (!r.ok()) return r.error();
  return {};
}

}  // namespace m1::memory
