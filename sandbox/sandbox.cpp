// sandbox: run() and check_available(): the parent side. It builds the plan, starts the helper
// (exec_main.cpp, which clones into the namespaces via child.cpp), streams and caps the output, enforces the wall-clock timeout and the cancel flag, and
// turns the child's status record into a RunResult or an Error.
// Decision: a timeout or cancel SIGKILLs the helper's process group; the sandbox's init dies with the
// helper (PDEATHSIG), and when the init of a pid namespace dies the kernel kills every process in it,
// so nothing the command started can outlive it. Unconfined mode (--sandbox off) has no pid namespace
// and relies on the process group alone.
#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>

#include "sandbox/output.h"
#include "sandbox/plan.h"

namespace m1::sandbox {
namespace {
using detail::Plan;
using detail::StatusRecord;
using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

std::string describe_setup_error(const StatusRecord& r, const Plan& plan) {
  std::string msg = std::string("sandbox setup failed in the ") + detail::step_layer(r.step) + " layer (" +
                    detail::step_name(r.step);
  bool op_step = r.step == detail::kStepOpenTree || r.step == detail::kStepTmpfs ||
                 r.step == detail::kStepMkdir || r.step == detail::kStepAttach ||
                 r.step == detail::kStepBindReadonly;
  if (op_step && r.value >= 0 && static_cast<size_t>(r.value) < plan.ops.size())
    msg += " at " + plan.ops[r.value].target;
  if (r.step == detail::kStepLandlock && r.value >= 0 && static_cast<size_t>(r.value) < plan.landlock_rules.size())
    msg += " for " + plan.landlock_rules[r.value].path;
  msg += ")";
  if (r.err) msg += std::string(": ") + strerror(r.err);
  else msg += ": the layer's self-check failed";
  return msg;
}

struct Waited {
  int status = 0;
  std::optional<StatusRecord> record;
};

Waited reap(pid_t pid, int status_fd) {
  Waited w;
  while (waitpid(pid, &w.status, 0) < 0 && errno == EINTR) {
  }
  StatusRecord r;
  ssize_t n;
  do n = read(status_fd, &r, sizeof r); while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof r)) w.record = r;
  return w;
}

struct Launched {
  pid_t pid = -1;
  bool group = false;  // pid leads a process group holding everything (helper, or unconfined wrapper)
};

void kill_all(const Launched& l) {
  if (l.group) kill(-l.pid, SIGKILL);  // helper/wrapper group; the sandbox's init dies with the helper
  else kill(l.pid, SIGKILL);           // init of the pid namespace: the kernel kills the rest
}

// Commands running now, for kill_running(): the pid to kill, negated for a process group; 0 = free.
// A slot is cleared before its child is reaped, so a pid here is never one the kernel reused.
constexpr int kLiveSlots = 64;
std::atomic<pid_t> g_live[kLiveSlots];

int register_live(const Launched& l) {
  const pid_t v = l.group ? -l.pid : l.pid;
  for (int i = 0; i < kLiveSlots; ++i) {
    pid_t expected = 0;
    if (g_live[i].compare_exchange_strong(expected, v)) return i;
  }
  return -1;  // more than 64 at once: that one is only killed by its own run()
}

std::atomic<int> g_helper_mode{-1};  // tests: -1 auto, 0 in-process clone, 1 helper required

// The m1-sandbox-exec helper: $M1_SANDBOX_EXEC, else next to this executable, else where the build
// put it. Empty when none is found (run() then clones in-process).
std::string helper_path() {
  static const std::string path = [] {
    auto ok = [](const std::string& p) { return !p.empty() && access(p.c_str(), X_OK) == 0; };
    if (const char* e = std::getenv("M1_SANDBOX_EXEC"); e && ok(e)) return std::string(e);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      std::string dir(self, static_cast<size_t>(n));
      dir.erase(dir.rfind('/') + 1);
      if (ok(dir + "m1-sandbox-exec")) return dir + "m1-sandbox-exec";
    }
#ifdef M1_SANDBOX_EXEC_PATH
    if (ok(M1_SANDBOX_EXEC_PATH)) return std::string(M1_SANDBOX_EXEC_PATH);
#endif
    return std::string();
  }();
  return g_helper_mode == 0 ? std::string() : path;
}

// posix_spawn (vfork-like: nothing of this process is copied, however large it is) of the helper,
// which then clones into the namespaces. Without a helper, clone() from here.
Result<Launched> launch(Plan& plan) {
  std::string helper = helper_path();
  if (helper.empty()) {
    if (g_helper_mode == 1) return make_error("sandbox: m1-sandbox-exec helper not found");
    M1_ASSIGN_OR_RETURN(pid_t pid, detail::spawn(plan));
    return Launched{pid, !plan.confined};
  }
  plan.own_session = false;  // the helper leads the session; everything stays in its group
  std::string bytes = detail::serialize_plan(plan);
  Fd mem(memfd_create("m1-sandbox-plan", MFD_CLOEXEC));
  if (mem.fd < 0) return make_error(std::string("sandbox: memfd_create: ") + strerror(errno));
  for (size_t off = 0; off < bytes.size();) {
    ssize_t w = write(mem.fd, bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return make_error(std::string("sandbox: writing the plan: ") + strerror(errno));
    off += static_cast<size_t>(w);
  }
  // High, close-on-exec copies first, so no dup2 below can clobber a source it still needs.
  Fd out(fcntl(plan.out_w, F_DUPFD_CLOEXEC, 10)), st(fcntl(plan.status_w, F_DUPFD_CLOEXEC, 10)),
      pl(fcntl(mem.fd, F_DUPFD_CLOEXEC, 10));
  if (out.fd < 0 || st.fd < 0 || pl.fd < 0) return make_error(std::string("sandbox: fcntl: ") + strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, out.fd, 2);
  posix_spawn_file_actions_adddup2(&fa, st.fd, 3);
  posix_spawn_file_actions_adddup2(&fa, pl.fd, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string parent = std::to_string(getpid());
  char* argv[] = {helper.data(), parent.data(), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, helper.c_str(), &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return make_error("sandbox: cannot start " + helper + ": " + strerror(rc));
  return Launched{pid, true};
}

// Streams output until EOF, the deadline or cancellation; returns after the child is gone.
void pump(const Launched& child, int out_fd, int full_fd, double timeout_s,
          const std::atomic<bool>* cancel, const std::function<void(std::string_view)>& on_output,
          OutputCapture& capture, RunResult& res) {
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  std::optional<Clock::time_point> killed_at;
  std::string buf(64 * 1024, '\0');
  for (;;) {
    auto now = Clock::now();
    if (!killed_at) {
      bool cancelled = cancel && cancel->load();
      if (cancelled || (timeout_s > 0 && now >= deadline)) {
        kill_all(child);
        killed_at = now;
        (cancelled ? res.cancelled : res.timed_out) = true;
      }
    } else if (now - *killed_at > std::chrono::seconds(2)) {
      break;  // unconfined only: something escaped the group and holds the pipe; stop reading
    }
    int wait_ms = 50;
    if (!killed_at && timeout_s > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
      wait_ms = static_cast<int>(std::min<long long>(wait_ms, std::max<long long>(left, 0)));
    }
    pollfd p{out_fd, POLLIN, 0};
    int r = poll(&p, 1, wait_ms);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = read(out_fd, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // EOF: every writer (init, the command, its children) is gone
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    capture.add(chunk);
    if (full_fd >= 0) {
      for (size_t off = 0; off < chunk.size();) {
        ssize_t w = write(full_fd, chunk.data() + off, chunk.size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += static_cast<size_t>(w);
      }
    }
    if (on_output) on_output(chunk);
  }
}

std::optional<Status> g_available;
std::mutex g_available_mu;

Status probe_layers() {
  int seccomp_mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  if (seccomp_mode < 0) return make_error(std::string("seccomp is unavailable: ") + strerror(errno));
  if (auto p = detail::seccomp_program(false); !p.ok()) return p.error();
  int abi = detail::landlock_abi();
  if (abi < 1)
    return make_error(std::string("Landlock is unavailable (landlock_create_ruleset: ") + strerror(errno) +
                      "; the kernel needs CONFIG_SECURITY_LANDLOCK and 'landlock' in the lsm= list)");
  // Namespaces, mounts, rlimits, capability drop: apply them all to a probe that exits at once.
  char dir[] = "/tmp/m1-sandbox-probe-XXXXXX";
  if (!mkdtemp(dir)) return make_error(std::string("cannot create a probe workspace: ") + strerror(errno));
  Policy policy;
  policy.workspace = dir;
  Command cmd;
  RunResult rr;
  Status st;
  {
    auto plan = detail::make_plan(cmd, policy, /*probe=*/true);
    if (!plan.ok()) {
      rmdir(dir);
      return plan.error();
    }
    int out[2], stp[2];
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(stp, O_CLOEXEC) < 0) {
      rmdir(dir);
      return make_error(std::string("pipe: ") + strerror(errno));
    }
    Fd out_r(out[0]), out_w(out[1]), st_r(stp[0]), st_w(stp[1]);
    plan->out_w = out_w.fd;
    plan->status_w = st_w.fd;
    auto child = launch(*plan);
    out_w.reset();
    st_w.reset();
    if (!child.ok()) {
      st = make_error("user/mount/pid/net namespaces are unavailable: " + child.error().message);
    } else {
      OutputCapture cap(4096);
      pump(*child, out_r.fd, -1, 10, nullptr, {}, cap, rr);
      Waited w = reap(child->pid, st_r.fd);
      if (w.record && w.record->kind == StatusRecord::SetupError)
        st = make_error(describe_setup_error(*w.record, *plan));
      else if (!w.record || w.record->kind != StatusRecord::Exited || w.record->value != 0)
        st = make_error("the sandbox probe did not exit cleanly (output: " + cap.text() + ")");
    }
  }
  rmdir(dir);
  return st;
}

}  // namespace

namespace detail {
void use_helper_for_testing(int mode) { g_helper_mode = mode; }
std::string helper_path_for_testing() { return helper_path(); }
void reset_availability_cache() {
  std::lock_guard<std::mutex> lock(g_available_mu);
  g_available.reset();
}
}  // namespace detail

void kill_running() {
  for (auto& slot : g_live) {
    const pid_t v = slot.load();
    if (v != 0) kill(v, SIGKILL);  // negative: the helper's (or unconfined wrapper's) whole group
  }
}

Status check_available() {
  // Success is cached; a failure is probed again next time (it may have been transient, e.g. EAGAIN).
  std::lock_guard<std::mutex> lock(g_available_mu);
  if (g_available) return *g_available;
  Status st = probe_layers();
  if (st.ok()) g_available = st;
  return st;
}

Result<RunResult> run(const Command& cmd, const Policy& policy, const std::atomic<bool>* cancel,
                      const std::function<void(std::string_view)>& on_output) {
  if (policy.mode == Mode::Enforce) {
    Status avail = check_available();
    if (!avail.ok())
      return make_error("sandbox unavailable, refusing to run unconfined: " + avail.error().message +
                        ". To run without confinement (your decision, never the model's), pass --sandbox off");
  }
  M1_ASSIGN_OR_RETURN(Plan plan, detail::make_plan(cmd, policy, false));
  Fd full;
  if (!cmd.full_output_path.empty()) {
    full.fd = open(cmd.full_output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (full.fd < 0)
      return make_error("sandbox: cannot write the full output to '" + cmd.full_output_path.string() +
                        "': " + strerror(errno));
  }
  int out[2], stp[2];
  if (pipe2(out, O_CLOEXEC) < 0) return make_error(std::string("sandbox: pipe: ") + strerror(errno));
  Fd out_r(out[0]), out_w(out[1]);
  if (pipe2(stp, O_CLOEXEC) < 0) return make_error(std::string("sandbox: pipe: ") + strerror(errno));
  Fd st_r(stp[0]), st_w(stp[1]);
  plan.out_w = out_w.fd;
  plan.status_w = st_w.fd;

  auto start = Clock::now();
  M1_ASSIGN_OR_RETURN(Launched child, launch(plan));
  const int slot = register_live(child);
  out_w.reset();
  st_w.reset();

  RunResult res;
  OutputCapture capture(policy.output_cap_bytes);
  pump(child, out_r.fd, full.fd, policy.timeout_s, cancel, on_output, capture, res);
  if (child.group) kill_all(child);  // whatever is left of the group
  if (slot >= 0) g_live[slot].store(0);
  Waited w = reap(child.pid, st_r.fd);
  res.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  if (w.record && w.record->kind == StatusRecord::SetupError)
    return make_error(describe_setup_error(*w.record, plan));
  if (w.record && w.record->kind == StatusRecord::ExecError) {
    std::string msg = "m1-sandbox: cannot run '" + cmd.argv[0] + "': " + strerror(w.record->err) + "\n";
    capture.add(msg);
    if (on_output) on_output(msg);
    res.exit_code = 127;
  } else if (w.record && w.record->kind == StatusRecord::Exited && !res.timed_out && !res.cancelled) {
    res.exit_code = w.record->value;
  } else if (w.record && w.record->kind == StatusRecord::Signaled && !res.timed_out && !res.cancelled) {
    res.term_signal = w.record->value;
  } else if (res.timed_out || res.cancelled) {
    res.term_signal = SIGKILL;  // we killed it
  } else {
    // Neither a status nor our kill: the helper or init died underneath (OOM killer, a bad plan).
    std::string how = WIFSIGNALED(w.status) ? "killed by signal " + std::to_string(WTERMSIG(w.status))
                                            : "exit status " + std::to_string(WEXITSTATUS(w.status));
    return make_error("sandbox: the sandbox ended without reporting the command's status (" + how +
                      "); output: " + capture.text());
  }
  res.output = capture.text();
  res.output_bytes = capture.total();
  return res;
}

}  // namespace m1::sandbox
