// m1-sandbox-exec: the small helper run() starts with posix_spawn (vfork-like: the caller's memory
// is never copied, however large the embedding process is). It reads the Plan from fd 4, then does
// exactly what the in-process path does: clone() into the namespaces (child.cpp) and wait.
// fds on entry: 0 /dev/null, 1+2 the output pipe, 3 the status pipe, 4 the plan (memfd).
// Decision: the helper stays the parent of the sandbox's init and dies with its caller
// (PR_SET_PDEATHSIG); the init dies with the helper, and with the init the whole pid namespace.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sandbox/plan.h"

int main(int argc, char** argv) {
  using namespace m1::sandbox::detail;
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // The caller passes its pid: if it is already gone, PDEATHSIG was set too late to fire.
  if (argc < 2 || getppid() != static_cast<pid_t>(std::atol(argv[1]))) return 125;
  close_range(5, ~0u, 0);
  std::string bytes;
  char buf[65536];
  for (off_t off = 0;;) {
    ssize_t n = pread(4, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "m1-sandbox-exec: cannot read the plan: %s\n", std::strerror(errno));
      return 125;
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    off += n;
  }
  close(4);
  auto plan = deserialize_plan(bytes);
  if (!plan.ok()) {
    std::fprintf(stderr, "%s\n", plan.error().message.c_str());
    return 125;
  }
  plan->out_w = 1;
  plan->status_w = 3;
  auto pid = spawn(*plan);
  if (!pid.ok()) {
    StatusRecord r;
    r.kind = StatusRecord::SetupError;
    r.step = kStepClone;
    r.err = errno ? errno : EPERM;
    (void)!write(3, &r, sizeof r);
    return 126;
  }
  close(1);  // only the sandbox holds the output and status pipes now
  close(2);
  close(3);
  int st = 0;
  while (waitpid(*pid, &st, 0) < 0 && errno == EINTR) {
  }
  return 0;
}
