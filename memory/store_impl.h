// Internals shared by store.cpp (schema, sessions, appends) and store_read.cpp (queries):
// the connection with its statement cache and mutex, a statement-in-use guard, and a
// BEGIN IMMEDIATE transaction guard. Not for use outside memory/.
#pragma once
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>

#include "memory/store.h"

namespace m1::memory::detail {

using nlohmann::json;

std::string now_iso();  // "YYYY-MM-DDTHH:MM:SS.mmmZ"

// Tool output may hold invalid UTF-8: store it with U+FFFD instead of failing.
inline std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }


// Parses a stored JSON column; `where` names the row for the error.
inline Result<json> parse_stored(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return make_error(where + ": stored JSON is corrupt");
  return j;
}

// Bound statement in use; resets itself when the scope ends so the cache can reuse it.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  ~Stmt() {
    if (s_) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  std::string text(int c) const {
    auto p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : std::string();
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double f64(int c) const { return sqlite3_column_double(s_, c); }

 private:
  sqlite3_stmt* s_;
};

}  // namespace m1::memory::detail

namespace m1::memory {

struct Store::Impl {
  sqlite3* db = nullptr;
  std::string where;  // "session store <path>"
  std::mutex mu;
  std::unordered_map<std::string, sqlite3_stmt*> cache;
  std::mt19937_64 rng{std::random_device{}() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};

  ~Impl() {
    for (auto& [sql, s] : cache) sqlite3_finalize(s);
    if (db) sqlite3_close_v2(db);
  }

  Error fail(const std::string& what) const {
    std::string msg = where + ": " + what;
    if (db) msg += std::string(": ") + sqlite3_errmsg(db);
    return make_error(msg);
  }

  Result<sqlite3_stmt*> prepare(const std::string& sql) {
    auto it = cache.find(sql);
    if (it != cache.end()) return it->second;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      return fail("cannot prepare \"" + sql.substr(0, 60) + "\"");
    }
    cache.emplace(sql, s);
    return s;
  }

  Status exec(const std::string& sql, const std::string& what) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : sqlite3_errmsg(db);
      sqlite3_free(err);
      return make_error(where + ": " + what + ": " + m);
    }
    return {};
  }

  // Runs a statement expected to finish without rows.
  Status run(detail::Stmt& st, const std::string& what) {
    int rc = st.step();
    if (rc != SQLITE_DONE) return fail(what);
    return {};
  }

  Result<bool> session_exists(const std::string& id) {
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, prepare("SELECT 1 FROM sessions WHERE id = ?1"));
    detail::Stmt st(s);
    st.bind(1, id);
    int rc = st.step();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return fail("cannot look up session '" + id + "'");
  }

  Result<int64_t> next_seq(const std::string& table, const std::string& sid) {
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s,
                        prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM " + table + " WHERE session_id = ?1"));
    detail::Stmt st(s);
    st.bind(1, sid);
    if (st.step() != SQLITE_ROW) return fail("cannot number the next row of " + table);
    return st.i64(0);
  }

  Status touch(const std::string& sid, const std::string& at) {
    M1_ASSIGN_OR_RETURN(sqlite3_stmt * s, prepare("UPDATE sessions SET updated_at = ?1 WHERE id = ?2"));
    detail::Stmt st(s);
    st.bind(1, at).bind(2, sid);
    return run(st, "cannot update session '" + sid + "'");
  }
};

}  // namespace m1::memory

namespace m1::memory::detail {

// BEGIN IMMEDIATE ... COMMIT; rolls back unless committed.
class Txn {
 public:
  explicit Txn(Store::Impl& im) : im_(im) {}
  Status begin() {
    M1_TRY(im_.exec("BEGIN IMMEDIATE", "cannot start a write transaction"));
    open_ = true;
    return {};
  }
  Status commit() {
    M1_TRY(im_.exec("COMMIT", "cannot commit"));
    open_ = false;
    return {};
  }
  ~Txn() {
    if (open_) sqlite3_exec(im_.db, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  Store::Impl& im_;
  bool open_ = false;
};

}  // namespace m1::memory::detail
