// child: the code that runs after clone(), inside the new namespaces: the init process (pid 1 of the
// new pid namespace) sets up mounts, then forks the command, which applies rlimits, no_new_privs,
// Landlock, capability drop and seccomp, and execs.
// Decision: this code runs either in the m1-sandbox-exec helper (normal case, single-threaded) or,
// when no helper is found, in a clone() of the caller, which may be multi-threaded. So it only makes
// async-signal-safe raw system calls: no malloc, no locks, no C++ library calls that allocate.
// Everything it reads was prepared in plan.cpp. Errors travel back as a fixed-size StatusRecord.
// Decision: the command is NOT pid 1. A small init stays pid 1 so the command keeps normal signal
// semantics, zombies are reaped, and when the command exits init exits too, which makes the kernel
// kill every process left in the namespace (no orphan survives).
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/landlock_defs.h"
#include "sandbox/plan.h"

namespace m1::sandbox::detail {
namespace {

constexpr int kStatusFd = 3;  // inside the child: 0 /dev/null, 1+2 output pipe, 3 status pipe

void write_all(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

[[noreturn]] void fail(int fd, int32_t step, int err, int32_t index = 0) {
  StatusRecord r;
  r.kind = StatusRecord::SetupError;
  r.step = step;
  r.err = err;
  r.value = index;
  write_all(fd, &r, sizeof r);
  _exit(126);
}

// Tests only (Plan::inject_fail_step): behave as if the kernel refused this step.
void maybe_inject(const Plan& p, int fd, int32_t step) {
  if (p.inject_fail_step == step) fail(fd, step, EPERM, -1);
}

bool write_file(const char* path, const char* data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t n = strlen(data);
  ssize_t w = write(fd, data, n);
  int saved = errno;
  close(fd);
  errno = saved;
  return w == static_cast<ssize_t>(n);
}

// fork() without glibc's atfork handlers (which take malloc locks another thread may hold).
pid_t raw_fork() { return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); }

// 0 = /dev/null, 1 and 2 = the output pipe, 3 = the status pipe, nothing else open.
void arrange_fds(const Plan& p) {
  int out = fcntl(p.out_w, F_DUPFD_CLOEXEC, 10);
  int st = fcntl(p.status_w, F_DUPFD_CLOEXEC, 10);
  if (out < 0 || st < 0) _exit(125);
  if (dup2(st, kStatusFd) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) _exit(125);
  int null = open("/dev/null", O_RDONLY);
  if (null < 0) fail(kStatusFd, kStepStdin, errno);
  if (null != 0) {
    dup2(null, 0);
    close(null);
  }
  close_range(kStatusFd + 1, ~0u, 0);
  fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);
}

void setup_user_ns(const Plan& p) {
  maybe_inject(p, kStatusFd, kStepUidMap);
  if (!write_file("/proc/self/setgroups", "deny") || !write_file("/proc/self/uid_map", p.uid_map.c_str()) ||
      !write_file("/proc/self/gid_map", p.gid_map.c_str()))
    fail(kStatusFd, kStepUidMap, errno);
}

void attach_cover(const MountOp& op, int index) {
  int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fs < 0) fail(kStatusFd, kStepTmpfs, errno, index);
  if (fsconfig(fs, FSCONFIG_SET_STRING, "size", op.size_opt.c_str(), 0) < 0 ||
      fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
      fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0)
    fail(kStatusFd, kStepTmpfs, errno, index);
  int m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (m < 0) fail(kStatusFd, kStepTmpfs, errno, index);
  close(fs);
  for (const auto& d : op.mkdirs)
    if (mkdirat(m, d.c_str(), 0755) < 0 && errno != EEXIST) fail(kStatusFd, kStepMkdir, errno, index);
  for (const auto& f : op.touch) {
    int fd = openat(m, f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) fail(kStatusFd, kStepMkdir, errno, index);
    close(fd);
  }
  for (const auto& [to, name] : op.symlinks)
    if (symlinkat(to.c_str(), m, name.c_str()) < 0) fail(kStatusFd, kStepMkdir, errno, index);
  if (op.readonly) {
    mount_attr a{};
    a.attr_set = MOUNT_ATTR_RDONLY;
    if (mount_setattr(m, "", AT_EMPTY_PATH, &a, sizeof a) < 0) fail(kStatusFd, kStepTmpfs, errno, index);
  }
  if (move_mount(m, "", AT_FDCWD, op.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
    fail(kStatusFd, kStepAttach, errno, index);
  close(m);
}

void setup_mounts(Plan& p) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) fail(kStatusFd, kStepMountPrivate, errno);
  // Clone every bind source first: later covers (private /tmp, hidden home) may hide the originals.
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const MountOp& op = p.ops[i];
    if (op.kind != MountOp::Bind) continue;
    int fd = open_tree(AT_FDCWD, op.source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) fail(kStatusFd, kStepOpenTree, errno, static_cast<int32_t>(i));
    p.clone_fds[op.clone_slot] = fd;
  }
  maybe_inject(p, kStatusFd, kStepReadonlyRoot);
  mount_attr ro{};
  ro.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
  if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) < 0) fail(kStatusFd, kStepReadonlyRoot, errno);
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const MountOp& op = p.ops[i];
    if (op.kind == MountOp::Cover) {
      attach_cover(op, static_cast<int>(i));
      continue;
    }
    int fd = p.clone_fds[op.clone_slot];
    mount_attr a{};
    a.attr_set = MOUNT_ATTR_NOSUID | (op.bind_readonly ? MOUNT_ATTR_RDONLY : 0);
    if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
      fail(kStatusFd, kStepBindReadonly, errno, static_cast<int32_t>(i));
    if (move_mount(fd, "", AT_FDCWD, op.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
      fail(kStatusFd, kStepAttach, errno, static_cast<int32_t>(i));
    close(fd);
  }
  // A fresh /proc for the new pid namespace: the command sees only its own processes.
  maybe_inject(p, kStatusFd, kStepProc);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    fail(kStatusFd, kStepProc, errno);
  // pid_max is per pid namespace (Linux 6.14+): a hard cap on live tasks, which also binds a root
  // caller (RLIMIT_NPROC is never enforced for the host's uid 0).
  if (!p.proc_pid_max.empty() && !write_file("/proc/sys/kernel/pid_max", p.proc_pid_max.c_str()) &&
      p.pid_max_required)
    fail(kStatusFd, kStepPidMax, errno);
  mount_attr pro{};
  pro.attr_set = MOUNT_ATTR_RDONLY;
  if (mount_setattr(AT_FDCWD, "/proc", 0, &pro, sizeof pro) < 0) fail(kStatusFd, kStepProcReadonly, errno);
}

// --- the command's side (after the second fork) ----------------------------------------------

void apply_rlimits(const Plan& p, int fd) {
  auto set = [&](int res, uint64_t v) {
    if (v == 0) return;
    rlimit r{v, v};
    if (setrlimit(res, &r) < 0) fail(fd, kStepRlimit, errno, res);
  };
  set(RLIMIT_CPU, p.cpu_seconds);
  set(RLIMIT_AS, p.memory_bytes);
  set(RLIMIT_NPROC, p.max_processes);
  set(RLIMIT_FSIZE, p.max_file_bytes);
  set(RLIMIT_NOFILE, p.max_open_files);
  rlimit core{0, 0};
  setrlimit(RLIMIT_CORE, &core);
}

void apply_landlock(const Plan& p, int fd) {
  maybe_inject(p, fd, kStepLandlock);
  ll::RulesetAttr attr{p.landlock_fs_handled, p.landlock_net_handled, p.landlock_scoped};
  unsigned long size = p.landlock_abi >= 6 ? ll::kRulesetSizeV6
                       : p.landlock_abi >= 4 ? ll::kRulesetSizeV4 : ll::kRulesetSizeV1;
  int rs = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (rs < 0) fail(fd, kStepLandlock, errno, -1);
  for (size_t i = 0; i < p.landlock_rules.size(); ++i) {
    const LandlockRule& rule = p.landlock_rules[i];
    int pfd = open(rule.path.c_str(), O_PATH | O_CLOEXEC);
    if (pfd < 0) fail(fd, kStepLandlock, errno, static_cast<int32_t>(i));
    ll::PathBeneathAttr pb{rule.access, pfd};
    if (syscall(SYS_landlock_add_rule, rs, ll::kRulePathBeneath, &pb, 0) < 0)
      fail(fd, kStepLandlock, errno, static_cast<int32_t>(i));
    close(pfd);
  }
  if (syscall(SYS_landlock_restrict_self, rs, 0) < 0) fail(fd, kStepLandlock, errno, -2);
  close(rs);
}

void drop_capabilities(const Plan& p, int fd) {
  maybe_inject(p, fd, kStepCaps);
  // uid 0 inside the user namespace would regain every capability at execve without NOROOT.
  unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                       SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                       SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0) fail(fd, kStepCaps, errno, 0);
  for (int c = 0; c <= p.cap_last; ++c)
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) fail(fd, kStepCaps, errno, 1);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) < 0) fail(fd, kStepCaps, errno, 2);
}

[[noreturn]] void command_main(const Plan& p, int report_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // unconfined mode has no pid namespace to die with
  // Ignored signals survive execve: a caller that ignores SIGPIPE must not change how `yes | head`
  // behaves in here. Default dispositions and an empty mask, as in a fresh login.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  apply_rlimits(p, report_fd);
  if (p.confined) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail(report_fd, kStepNoNewPrivs, errno);
    apply_landlock(p, report_fd);
    drop_capabilities(p, report_fd);
  }
  if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0) fail(report_fd, kStepCloseFds, errno);
  if (p.confined) {
    maybe_inject(p, report_fd, kStepSeccomp);
    sock_fprog prog{static_cast<unsigned short>(p.bpf.size()), const_cast<sock_filter*>(p.bpf.data())};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) fail(report_fd, kStepSeccomp, errno);
    sock_fprog pers{static_cast<unsigned short>(p.bpf_personality.size()),
                    const_cast<sock_filter*>(p.bpf_personality.data())};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &pers, 0, 0) < 0) fail(report_fd, kStepSeccomp, errno, 2);
  }
  if (p.probe) {
    // Self-check of the layers that are easy to test from here.
    if (p.confined) {
      int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (s >= 0) fail(report_fd, kStepSeccomp, 0, 1);
      if (open("/etc/m1-sandbox-probe", O_CREAT | O_WRONLY | O_CLOEXEC, 0600) >= 0)
        fail(report_fd, kStepReadonlyRoot, 0, 1);
    }
    _exit(0);
  }
  int err = ENOENT;
  for (const auto& cand : p.exec_candidates) {
    execve(cand.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) {
      err = errno;
      break;
    }
    if (errno == EACCES) err = EACCES;
  }
  StatusRecord r;
  r.kind = StatusRecord::ExecError;
  r.err = err;
  write_all(report_fd, &r, sizeof r);
  _exit(127);
}

int child_main(void* arg) {
  Plan& p = *static_cast<Plan*>(arg);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // Own session and process group: a terminal's Ctrl-C reaches the caller, which decides.
  if (p.own_session && setsid() < 0) _exit(125);
  arrange_fds(p);
  if (p.confined) {
    setup_user_ns(p);
    if (sethostname("m1-sandbox", 10) < 0) fail(kStatusFd, kStepHostname, errno);
    setup_mounts(p);
  }
  if (!p.cwd.empty() && chdir(p.cwd.c_str()) < 0) fail(kStatusFd, kStepChdir, errno);
  int rp[2];
  if (pipe2(rp, O_CLOEXEC) < 0) fail(kStatusFd, kStepFork, errno);
  pid_t pid = raw_fork();
  if (pid < 0) fail(kStatusFd, kStepFork, errno);
  if (pid == 0) {
    close(rp[0]);
    command_main(p, rp[1]);
  }
  close(rp[1]);
  // The report pipe closes at a successful execve (O_CLOEXEC) or carries the reason it failed.
  StatusRecord rec;
  ssize_t n;
  do n = read(rp[0], &rec, sizeof rec); while (n < 0 && errno == EINTR);
  bool relayed = n == static_cast<ssize_t>(sizeof rec);
  int status = 0;
  for (;;) {
    int st = 0;
    pid_t w = waitpid(-1, &st, 0);
    if (w == pid) {
      status = st;
      break;
    }
    if (w < 0 && errno != EINTR) break;
  }
  if (!relayed) {
    rec = StatusRecord{};
    if (WIFEXITED(status)) {
      rec.kind = StatusRecord::Exited;
      rec.value = WEXITSTATUS(status);
    } else {
      rec.kind = StatusRecord::Signaled;
      rec.value = WTERMSIG(status);
    }
  }
  write_all(kStatusFd, &rec, sizeof rec);
  // Unconfined: no pid namespace to tear down, so take the command's process group with us.
  if (!p.confined) kill(0, SIGKILL);
  _exit(0);
}

}  // namespace

Result<pid_t> spawn(Plan& plan) {
  constexpr size_t kStack = 256 * 1024;
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return make_error(std::string("sandbox: cannot allocate a stack: ") + strerror(errno));
  pid_t pid = clone(child_main, static_cast<char*>(stack) + kStack, plan.clone_flags | SIGCHLD, &plan);
  int err = errno;
  munmap(stack, kStack);
  if (pid < 0) {
    std::string msg = std::string("sandbox: clone() failed: ") + strerror(err);
    if (plan.confined) msg += " (user/mount/pid/net/ipc/uts namespaces unavailable?)";
    return make_error(msg);
  }
  return pid;
}

}  // namespace m1::sandbox::detail
