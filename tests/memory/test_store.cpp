// memory::Store: round trips of every record kind, list/last/prefix lookup, snapshots, reopening,
// threads sharing one Store, and clear errors for bad files (garbage, another app's database, a
// newer schema, a folder, corrupted pages). Crash and multi-process tests: test_store_crash.cpp.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <thread>

#include "memory/store.h"

using namespace m1::memory;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "m1-store-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<Store> open_ok(const fs::path& p) {
    auto r = Store::open(p);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? std::move(r).value() : nullptr;
  }
  fs::path dir_;
};

void sql(const fs::path& db, const char* statement) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(h, statement, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  sqlite3_close(h);
}

}  // namespace

TEST_F(StoreTest, SessionRoundTripAndUpdate) {
  auto st = open_ok(dir_ / "nested" / "dirs" / "m1.db");  // folders are created
  ASSERT_TRUE(st);
  SessionInfo in;
  in.kind = "fix";
  in.repo = "/src/proj";
  in.task = "Fix the off-by-one in range()";
  in.meta = {{"provider", "scripted"}, {"budget", {{"steps", 30}}}};
  auto id = st->create_session(in);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_TRUE(std::regex_match(id.value(), std::regex(R"(\d{8}-\d{6}-\d{3}-[0-9a-f]{6})"))) << id.value();

  auto got = st->get_session(id.value());
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->id, id.value());
  EXPECT_EQ(got->kind, "fix");
  EXPECT_EQ(got->repo, "/src/proj");
  EXPECT_EQ(got->task, in.task);
  EXPECT_EQ(got->status, "running");
  EXPECT_EQ(got->meta, in.meta);
  EXPECT_TRUE(std::regex_match(got->created_at, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << got->created_at;
  EXPECT_EQ(got->updated_at, got->created_at);

  SessionInfo up = got.value();
  up.status = "stopped";
  up.stop_reason = "max_steps";
  up.steps = 30;
  up.input_tokens = 123456789012;
  up.output_tokens = 42;
  up.meta["worktree"] = "/tmp/wt";
  ASSERT_TRUE(st->update_session(up).ok());
  auto after = st->get_session(id.value());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, "stopped");
  EXPECT_EQ(after->stop_reason, "max_steps");
  EXPECT_EQ(after->steps, 30);
  EXPECT_EQ(after->input_tokens, 123456789012);
  EXPECT_EQ(after->output_tokens, 42);
  EXPECT_EQ(after->meta["worktree"], "/tmp/wt");
  EXPECT_GE(after->updated_at, after->created_at);

  up.status = "paused";
  auto bad = st->update_session(up);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("must be running, stopped or finished, got 'paused'"), std::string::npos);
  up.status = "finished";
  up.id = "no-such-id";
  bad = st->update_session(up);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("no session 'no-such-id'"), std::string::npos) << bad.error().message;
}

TEST_F(StoreTest, EventsMessagesToolCallsRoundTrip) {
  auto st = open_ok(dir_ / "m1.db");
  ASSERT_TRUE(st);
  auto sid = st->create_session(SessionInfo{});
  ASSERT_TRUE(sid.ok());
  const std::string s = sid.value();
  for (int i = 1; i <= 3; ++i) {
    auto seq = st->append_event(s, "turn_start", {{"step", i}});
    ASSERT_TRUE(seq.ok()) << seq.error().message;
    EXPECT_EQ(seq.value(), i);
  }
  // Invalid UTF-8 in tool output is stored (replaced), not an error.
  auto seq4 = st->append_event(s, "tool_result", {{"output", std::string("bin\xff\xfe")}});
  ASSERT_TRUE(seq4.ok()) << seq4.error().message;
  auto evs = st->events(s);
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 4u);
  EXPECT_EQ((*evs)[1].type, "turn_start");
  EXPECT_EQ((*evs)[1].payload, json({{"step", 2}}));
  EXPECT_EQ((*evs)[1].session_id, s);
  EXPECT_EQ((*evs)[3].payload["output"], "bin\xef\xbf\xbd\xef\xbf\xbd");
  auto tail = st->events(s, 2);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[0].seq, 3);

  EXPECT_EQ(st->append_message(s, "user", {{"content", "fix it"}}).value(), 1);
  EXPECT_EQ(st->append_message(s, "assistant", {{"content", "ok"}, {"tool_calls", json::array()}}).value(), 2);
  auto ms = st->messages(s);
  ASSERT_TRUE(ms.ok());
  ASSERT_EQ(ms->size(), 2u);
  EXPECT_EQ((*ms)[0].role, "user");
  EXPECT_EQ((*ms)[1].content, json({{"content", "ok"}, {"tool_calls", json::array()}}));

  ASSERT_TRUE(st->record_tool_call(s, "c1", "shell", {{"command", "ls"}}, "a\nb", false, 100.25, 101.5).ok());
  ASSERT_TRUE(st->record_tool_call(s, "c2", "view", {{"path", "x"}}, {{"error", "no such file"}}, true, 102, 102.01).ok());
  auto tc = st->tool_calls(s);
  ASSERT_TRUE(tc.ok());
  ASSERT_EQ(tc->size(), 2u);
  EXPECT_EQ((*tc)[0].call_id, "c1");
  EXPECT_EQ((*tc)[0].result, "a\nb");
  EXPECT_FALSE((*tc)[0].is_error);
  EXPECT_DOUBLE_EQ((*tc)[0].started_unix, 100.25);
  EXPECT_DOUBLE_EQ((*tc)[0].finished_unix, 101.5);
  EXPECT_TRUE((*tc)[1].is_error);
  EXPECT_EQ((*tc)[1].args, json({{"path", "x"}}));

  // Appending to a session that does not exist names it.
  auto bad = st->append_event("nope", "x", json::object());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("no session 'nope'"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find((dir_ / "m1.db").string()), std::string::npos);
  EXPECT_TRUE(st->check_integrity().ok());
}

TEST_F(StoreTest, ListLastAndPrefixLookup) {
  auto st = open_ok(dir_ / "m1.db");
  ASSERT_TRUE(st);
  auto none = st->last_session_id();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    SessionInfo in;
    in.task = "task " + std::to_string(i);
    ids.push_back(st->create_session(in).value());
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  EXPECT_LT(ids[0], ids[1]);  // ids sort by creation time
  EXPECT_LT(ids[1], ids[2]);
  auto all = st->list_sessions();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, ids[2]);
  EXPECT_EQ((*all)[2].task, "task 0");
  auto two = st->list_sessions(2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  EXPECT_EQ(st->last_session_id().value(), std::optional<std::string>(ids[2]));

  // Unique prefix: the id without its last two characters (random suffix differs in the rest).
  auto p = st->get_session(ids[1].substr(0, ids[1].size() - 2));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->id, ids[1]);
  auto amb = st->get_session(ids[0].substr(0, 4));
  ASSERT_FALSE(amb.ok());
  EXPECT_NE(amb.error().message.find("is ambiguous; it matches " + ids[0] + ", " + ids[1]), std::string::npos)
      << amb.error().message;
  auto miss = st->get_session("zz");
  ASSERT_FALSE(miss.ok());
  EXPECT_NE(miss.error().message.find("no session matches 'zz'"), std::string::npos);

  SessionInfo named;
  named.id = "my-session";
  EXPECT_EQ(st->create_session(named).value(), "my-session");
  auto dup = st->create_session(named);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("'my-session' already exists"), std::string::npos);

  ASSERT_TRUE(st->append_event("my-session", "x", 1).ok());
  ASSERT_TRUE(st->delete_session("my-session").ok());
  EXPECT_FALSE(st->get_session("my-session").ok());
  EXPECT_TRUE(st->events("my-session").value().empty());  // cascaded
  EXPECT_FALSE(st->delete_session("my-session").ok());
}

TEST_F(StoreTest, SnapshotsAndReopen) {
  const fs::path db = dir_ / "m1.db";
  std::string sid;
  {
    auto st = open_ok(db);
    ASSERT_TRUE(st);
    sid = st->create_session(SessionInfo{}).value();
    auto none = st->latest_snapshot(sid);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(st->put_snapshot(sid, dir_ / "snap-1.bin", 1000).ok());
    ASSERT_TRUE(st->put_snapshot(sid, dir_ / "snap-2.bin", 2500).ok());
    ASSERT_TRUE(st->append_event(sid, "stop", {{"reason", "interrupted"}}).ok());
  }
  auto st = open_ok(db);
  ASSERT_TRUE(st);
  auto latest = st->latest_snapshot(sid);
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->first, dir_ / "snap-2.bin");
  EXPECT_EQ((*latest)->second, 2500);
  EXPECT_EQ(st->snapshots(sid).value().size(), 2u);
  EXPECT_EQ(st->events(sid).value().at(0).payload["reason"], "interrupted");
  // Appends continue numbering after a reopen.
  EXPECT_EQ(st->append_event(sid, "resume", json::object()).value(), 2);
}

TEST_F(StoreTest, ThreadsShareOneStore) {
  auto st = open_ok(dir_ / "m1.db");
  ASSERT_TRUE(st);
  const std::string sid = st->create_session(SessionInfo{}).value();
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (!st->append_event(sid, "e", {{"t", t}, {"i", i}}).ok()) ++failures;
        if (i % 10 == 0 && !st->list_sessions().ok()) ++failures;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto evs = st->events(sid).value();
  ASSERT_EQ(evs.size(), 400u);
  for (std::size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i].seq, static_cast<int64_t>(i + 1));
}

TEST_F(StoreTest, BadFilesGiveClearErrors) {
  const fs::path junk = dir_ / "junk.db";
  {
    std::ofstream f(junk, std::ios::binary);
    for (int i = 0; i < 500; ++i) f << "this is not a database at all ";
  }
  auto r = Store::open(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("session store " + junk.string() + ": not a usable SQLite database"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(fs::file_size(junk), 500u * 30u);  // untouched

  const fs::path other = dir_ / "other.db";
  sql(other, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES('keep me');");
  r = Store::open(other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("is an SQLite database of something else"), std::string::npos)
      << r.error().message;

  const fs::path newer = dir_ / "newer.db";
  { ASSERT_TRUE(open_ok(newer)); }
  sql(newer, "PRAGMA user_version = 99;");
  r = Store::open(newer);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("written by a newer m1 (schema version 99, this build knows up to " +
                                   std::to_string(Store::schema_version()) + ")"),
            std::string::npos)
      << r.error().message;

  r = Store::open(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("is a folder, expected a database file"), std::string::npos);

  { std::ofstream(dir_ / "afile") << "x"; }
  r = Store::open(dir_ / "afile" / "m1.db");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot create folder " + (dir_ / "afile").string()), std::string::npos)
      << r.error().message;
}

TEST_F(StoreTest, CorruptedPagesAreDetected) {
  const fs::path db = dir_ / "m1.db";
  {
    auto st = open_ok(db);
    ASSERT_TRUE(st);
    auto sid = st->create_session(SessionInfo{}).value();
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(st->append_event(sid, "e", {{"blob", std::string(200, 'x')}}).ok());
  }
  const auto size = fs::file_size(db);
  ASSERT_GT(size, 16384u);
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    std::string garbage(8192, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto r = Store::open(db);
  if (!r.ok()) {
    EXPECT_NE(r.error().message.find(db.string()), std::string::npos) << r.error().message;
    return;
  }
  auto check = r.value()->check_integrity();
  ASSERT_FALSE(check.ok());
  EXPECT_NE(check.error().message.find("integrity check failed"), std::string::npos) << check.error().message;
}

TEST(StoreDefaultPath, FollowsEnvironmentInAChild) {
  // The variables are set in a forked child so this process's environment stays untouched.
  auto in_child = [](const char* state_dir, const char* xdg, const char* home) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      unsetenv("M1_STATE_DIR");
      unsetenv("XDG_STATE_HOME");
      if (state_dir) setenv("M1_STATE_DIR", state_dir, 1);
      if (xdg) setenv("XDG_STATE_HOME", xdg, 1);
      if (home) setenv("HOME", home, 1);
      std::string p = Store::default_path().string();
      ssize_t n = write(fds[1], p.data(), p.size());
      _exit(n == static_cast<ssize_t>(p.size()) ? 0 : 1);
    }
    close(fds[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, n);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return out;
  };
  EXPECT_EQ(in_child("/s", "/x", "/h"), "/s/m1.db");
  EXPECT_EQ(in_child(nullptr, "/x", "/h"), "/x/m1/m1.db");
  EXPECT_EQ(in_child(nullptr, nullptr, "/h"), "/h/.local/state/m1/m1.db");
}
