// agent/interrupt.h: Ctrl-C handling for agent commands. The first SIGINT (or SIGTERM) sets the
// cancel flag: the running tool's process group is killed, the turn ends, the session is saved
// with stop reason `interrupted`. A second one exits at once (status 130): every sandboxed
// command still running is killed, the on_exit_now callback gets up to kExitGraceSeconds to
// record the stop (e.g. the session row), and the process _exits whether or not it finished.
// A third one exits immediately.
#pragma once
#include <atomic>
#include <functional>

namespace m1::agent {

class InterruptGuard {
 public:
  static constexpr double kExitGraceSeconds = 2;

  // Installs the handlers and starts the watcher thread. exiting_after_interrupt: the process ends
  // when this guard's work ends (the CLI): after an interrupt, the destructor leaves a handler that
  // exits with 130 instead of restoring the previous ones, so a Ctrl-C that lands while the process
  // finishes is still "exit now", not death by the default action.
  explicit InterruptGuard(bool exiting_after_interrupt = false);
  ~InterruptGuard();  // restores the previous handlers (see above) and stops the watcher
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  const std::atomic<bool>* flag() const;
  // Runs on the watcher thread at a second interrupt, never in the signal handler, so it may
  // take locks and write the store; set it before work starts.
  void on_exit_now(std::function<void()> fn);

 private:
  bool exiting_after_interrupt_;
};

}  // namespace m1::agent
