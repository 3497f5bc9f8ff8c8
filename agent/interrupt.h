// agent/interrupt.h: Ctrl-C handling for agent commands. The first SIGINT (or SIGTERM) sets the
// cancel flag: the running tool's process group is killed, the turn ends, the session is saved
// with stop reason `interrupted`. A second one exits at once (status 130).
#pragma once
#include <atomic>

namespace m1::agent {

class InterruptGuard {
 public:
  InterruptGuard();   // installs the handlers
  ~InterruptGuard();  // restores the previous ones
  const std::atomic<bool>* flag() const;
};

}  // namespace m1::agent
