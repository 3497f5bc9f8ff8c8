// agent/interrupt.cpp: async-signal-safe handler: only an atomic store, write(2) and _exit(2).
#include "agent/interrupt.h"

#include <signal.h>
#include <unistd.h>

namespace m1::agent {

namespace {
std::atomic<bool> g_cancel{false};
std::atomic<int> g_count{0};
struct sigaction g_old_int, g_old_term;

void on_signal(int) {
  if (g_count.fetch_add(1) >= 1) {
    const char msg[] = "\nm1: second interrupt, exiting now\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(130);
  }
  g_cancel.store(true);
  const char msg[] = "\nm1: interrupting (stopping the running tool; Ctrl-C again to exit now)\n";
  (void)!write(2, msg, sizeof msg - 1);
}
}  // namespace

InterruptGuard::InterruptGuard() {
  g_cancel.store(false);
  g_count.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

const std::atomic<bool>* InterruptGuard::flag() const { return &g_cancel; }

}  // namespace m1::agent
