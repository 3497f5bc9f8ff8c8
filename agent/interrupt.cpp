// agent/interrupt.cpp: the handler is async-signal-safe: an atomic store, write(2) and _exit(2).
// Decision: the second interrupt must exit promptly yet leave the store saying what happened, and
// a signal handler can do neither SQLite nor locks. So it only writes a byte to a pipe; a watcher
// thread wakes, kills the running sandboxed commands, runs the on_exit_now callback on yet another
// thread and waits for it at most kExitGraceSeconds (it may block on a lock held by the thread the
// signal interrupted), then _exits with 130.
#include "agent/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "sandbox/sandbox.h"

namespace m1::agent {

namespace {
std::atomic<bool> g_cancel{false};
std::atomic<int> g_count{0};
std::atomic<int> g_wake_fd{-1};  // write end of the watcher's pipe
struct sigaction g_old_int, g_old_term;

constexpr char kExitNow = 'x', kQuit = 'q';

std::mutex g_fn_mu;
std::function<void()> g_on_exit_now;
std::thread g_watcher;
int g_pipe[2] = {-1, -1};

void say(const char* msg, size_t n) { (void)!write(2, msg, n); }

void on_signal(int) {
  const int n = g_count.fetch_add(1);
  const int fd = g_wake_fd.load();
  if (n >= 2 || (n == 1 && fd < 0)) {  // third, or second without a watcher: now
    const char msg[] = "\nm1: exiting now\n";
    say(msg, sizeof msg - 1);
    _exit(130);
  }
  if (n == 1) {
    const char msg[] = "\nm1: second interrupt, exiting (Ctrl-C again to exit at once)\n";
    say(msg, sizeof msg - 1);
    (void)!write(fd, &kExitNow, 1);
    return;
  }
  g_cancel.store(true);
  const char msg[] = "\nm1: interrupting (stopping the running tool; Ctrl-C again to exit now)\n";
  say(msg, sizeof msg - 1);
}

void watch(int read_fd) {
  char c = 0;
  for (;;) {
    ssize_t n = read(read_fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == kQuit) return;
    if (c == kExitNow) break;
  }
  sandbox::kill_running();
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> l(g_fn_mu);
    fn = g_on_exit_now;
  }
  if (fn) {
    struct Done {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
    };
    auto done = std::make_shared<Done>();
    std::thread([fn, done] {
      fn();
      std::lock_guard<std::mutex> l(done->mu);
      done->done = true;
      done->cv.notify_all();
    }).detach();
    std::unique_lock<std::mutex> l(done->mu);
    done->cv.wait_for(l, std::chrono::duration<double>(InterruptGuard::kExitGraceSeconds),
                      [&] { return done->done; });
  }
  _exit(130);
}
}  // namespace

InterruptGuard::InterruptGuard(bool exiting_after_interrupt) : exiting_after_interrupt_(exiting_after_interrupt) {
  g_cancel.store(false);
  g_count.store(0);
  if (pipe2(g_pipe, O_CLOEXEC) == 0) {
    g_watcher = std::thread(watch, g_pipe[0]);
    g_wake_fd.store(g_pipe[1]);
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

static void exit_now_on_signal(int) {
  const char msg[] = "\nm1: exiting now\n";
  say(msg, sizeof msg - 1);
  _exit(130);
}

InterruptGuard::~InterruptGuard() {
  if (exiting_after_interrupt_ && g_count.load() > 0) {
    // Interrupted, and the process is on its way out. A Ctrl-C that comes while it finishes (the first
    // one was handled quickly) still means "exit now" with the interrupt's status, not death by the
    // default SIGINT action (which a caller would see as a crash).
    struct sigaction sa {};
    sa.sa_handler = exit_now_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  } else {
    sigaction(SIGINT, &g_old_int, nullptr);
    sigaction(SIGTERM, &g_old_term, nullptr);
  }
  const int fd = g_wake_fd.exchange(-1);
  if (fd >= 0) (void)!write(fd, &kQuit, 1);
  if (g_watcher.joinable()) g_watcher.join();
  for (int& f : g_pipe) {
    if (f >= 0) close(f);
    f = -1;
  }
  std::lock_guard<std::mutex> l(g_fn_mu);
  g_on_exit_now = nullptr;
}

const std::atomic<bool>* InterruptGuard::flag() const { return &g_cancel; }

void InterruptGuard::on_exit_now(std::function<void()> fn) {
  std::lock_guard<std::mutex> l(g_fn_mu);
  g_on_exit_now = std::move(fn);
}

}  // namespace m1::agent
