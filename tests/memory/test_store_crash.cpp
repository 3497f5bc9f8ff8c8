// memory::Store across processes: a child appending records is SIGKILLed at a random moment and
// every record it had reported as written (through a pipe, after the call returned) must be in
// the database, intact, with the file passing PRAGMA integrity_check; two processes writing to
// the same session at once both succeed with gap-free, duplicate-free numbering.
// No Store is open across fork(): SQLite connections must not be shared with a child.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "memory/store.h"

using namespace m1::memory;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Reported {
  int64_t seq;
  int64_t i;
};

fs::path make_dir() {
  std::string tmpl = (fs::temp_directory_path() / "m1-crash-XXXXXX").string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

std::string create_session(const fs::path& db) {
  auto st = Store::open(db);
  EXPECT_TRUE(st.ok()) << st.error().message;
  return st.value()->create_session(SessionInfo{}).value();
}

// Payload i: a blob whose size and byte depend on i, so a torn record is detectable.
json payload(int64_t i) {
  std::size_t len = static_cast<std::size_t>((i * 7919) % 20000);
  return {{"i", i}, {"blob", std::string(len, static_cast<char>('a' + i % 26))}};
}

[[noreturn]] void child_append_forever(const fs::path& db, const std::string& sid, int out_fd) {
  auto st = Store::open(db);
  if (!st.ok()) _exit(3);
  for (int64_t i = 0;; ++i) {
    // Mix record kinds so the kill lands in different statements.
    if (i % 5 == 4 && !st.value()->record_tool_call(sid, "c", "shell", {{"i", i}}, "out", false, 1, 2).ok()) _exit(4);
    if (i % 7 == 6 && !st.value()->append_message(sid, "user", {{"i", i}}).ok()) _exit(4);
    auto seq = st.value()->append_event(sid, "tick", payload(i));
    if (!seq.ok()) _exit(5);
    Reported r{seq.value(), i};
    if (write(out_fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) _exit(6);
  }
}

}  // namespace

TEST(StoreCrash, KillNineLosesNothingReported) {
  const fs::path dir = make_dir();
  const fs::path db = dir / "m1.db";
  const std::string sid = create_session(db);
  std::mt19937 rng(12345);
  std::vector<Reported> all;
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      child_append_forever(db, sid, fds[1]);
    }
    close(fds[1]);
    // Kill after a random number of reported appends, plus a random sub-millisecond delay, so the
    // signal lands anywhere: mid-statement, mid-commit, mid-checkpoint, between calls.
    const std::size_t target = 1 + rng() % 250;
    std::size_t got_this_round = 0;
    Reported r;
    while (got_this_round < target && read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) {
      all.push_back(r);
      ++got_this_round;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 800));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with status " << WEXITSTATUS(status);
    // Reports written before the kill are still in the pipe.
    while (read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) all.push_back(r);
    close(fds[0]);
    ASSERT_EQ(got_this_round, target) << "round " << round;

    auto st = Store::open(db);
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto integrity = st.value()->check_integrity();
    ASSERT_TRUE(integrity.ok()) << integrity.error().message;
    auto evs = st.value()->events(sid);
    ASSERT_TRUE(evs.ok()) << evs.error().message;
    std::map<int64_t, const Event*> by_seq;
    for (std::size_t k = 0; k < evs->size(); ++k) {
      EXPECT_EQ((*evs)[k].seq, static_cast<int64_t>(k + 1)) << "gap in event numbering";
      by_seq[(*evs)[k].seq] = &(*evs)[k];
    }
    for (const auto& rep : all) {
      auto it = by_seq.find(rep.seq);
      ASSERT_NE(it, by_seq.end()) << "reported event seq " << rep.seq << " lost (round " << round << ")";
      ASSERT_EQ(it->second->payload, payload(rep.i)) << "event seq " << rep.seq << " damaged";
    }
    // Each round may leave one append that committed but was not yet reported.
    EXPECT_LE(evs->size(), all.size() + round + 1);
  }
  EXPECT_GT(all.size(), 6u);
  fs::remove_all(dir);
}

TEST(StoreCrash, TwoProcessesWriteOneSession) {
  const fs::path dir = make_dir();
  const fs::path db = dir / "m1.db";
  const std::string sid = create_session(db);
  constexpr int kPerWorker = 250;
  std::vector<pid_t> pids;
  for (int w = 0; w < 2; ++w) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto st = Store::open(db);
      if (!st.ok()) _exit(3);
      auto own = st.value()->create_session(SessionInfo{});
      if (!own.ok()) _exit(4);
      for (int i = 0; i < kPerWorker; ++i) {
        if (!st.value()->append_event(sid, "w", {{"w", w}, {"i", i}}).ok()) _exit(5);
        if (i % 25 == 0 && !st.value()->append_event(own.value(), "own", {{"i", i}}).ok()) _exit(6);
        if (i % 50 == 0 && !st.value()->list_sessions().ok()) _exit(7);
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "writer died";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "writer failed (exit code says which call)";
  }
  auto st = Store::open(db);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_TRUE(st.value()->check_integrity().ok());
  auto evs = st.value()->events(sid).value();
  ASSERT_EQ(evs.size(), 2u * kPerWorker);
  int next[2] = {0, 0};
  for (std::size_t k = 0; k < evs.size(); ++k) {
    EXPECT_EQ(evs[k].seq, static_cast<int64_t>(k + 1));
    int w = evs[k].payload["w"].get<int>();
    EXPECT_EQ(evs[k].payload["i"].get<int>(), next[w]++) << "worker " << w << " out of order";
  }
  EXPECT_EQ(st.value()->list_sessions().value().size(), 3u);
  fs::remove_all(dir);
}
