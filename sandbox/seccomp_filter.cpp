// seccomp_filter: the system-call filter every confined command runs under, compiled with libseccomp
// in the parent (the child cannot allocate) and cached as raw BPF.
// Decision: default-allow with a deny list (like Docker's profile, inverted): a default-deny list of
// allowed calls would break ordinary build and test tools whenever glibc starts using a new call.
// The denied calls are the ones that reach kernel attack surface or escape the namespaces: ptrace and
// cross-process memory, io_uring, bpf, every mount API, modules, kexec, keyrings, perf, new
// namespaces (unshare/clone flags, setns), handle-based opens, TIOCSTI and (in a second, hand-written
// filter) personality flags that turn off exploit mitigations.
// clone3 answers ENOSYS (its flags live in memory a filter cannot read) so libc falls back to clone.
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>

#include "sandbox/plan.h"

namespace m1::sandbox::detail {
namespace {

struct Ctx {
  scmp_filter_ctx ctx = nullptr;
  ~Ctx() { if (ctx) seccomp_release(ctx); }
};

const char* const kDenied[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "userfaultfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "create_module", "keyctl", "add_key", "request_key",
    "perf_event_open", "setns", "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff",
    "reboot", "acct", "syslog", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup", "iopl",
    "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "uselib",
    "fanotify_init", "nfsservctl", "_sysctl", "get_kernel_syms", "query_module", "vm86",
    "vm86old"};

constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
                                        CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, 0x80 /*NEWTIME*/};

// personality() bits that weaken exploit mitigations: ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO,
// ADDR_COMPAT_LAYOUT, READ_IMPLIES_EXEC, ADDR_LIMIT_32BIT, ADDR_LIMIT_3GB.
constexpr uint32_t kPersonalityMask = 0x0040000 | 0x0100000 | 0x0200000 | 0x0400000 | 0x0800000 | 0x8000000;

Result<std::vector<sock_filter>> build(bool network) {
  Ctx c;
  c.ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!c.ctx) return make_error("seccomp: seccomp_init failed");
  auto fail = [](const char* what, int rc) {
    return make_error(std::string("seccomp: ") + what + ": " + strerror(-rc));
  };
  int rc = seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc < 0) return fail("setting the bad-arch action", rc);
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not a call on this architecture
    if ((rc = seccomp_rule_add(c.ctx, eperm, nr, 0)) < 0) return fail(name, rc);
  }
  for (uint64_t f : kNamespaceFlags) {
    if ((rc = seccomp_rule_add(c.ctx, eperm, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) < 0)
      return fail("unshare", rc);
    if ((rc = seccomp_rule_add(c.ctx, eperm, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) < 0)
      return fail("clone", rc);
  }
  if ((rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0) return fail("clone3", rc);
  for (unsigned long req : {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    rc = seccomp_rule_add(c.ctx, eperm, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, req));
    if (rc < 0) return fail("ioctl", rc);
  }
  if (!network) {
    const uint32_t noaf = SCMP_ACT_ERRNO(EAFNOSUPPORT);
    if ((rc = seccomp_rule_add(c.ctx, noaf, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) < 0)
      return fail("socket", rc);
    if ((rc = seccomp_rule_add(c.ctx, noaf, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) < 0)
      return fail("socketpair", rc);
  }
  int mfd = memfd_create("m1-seccomp", MFD_CLOEXEC);
  if (mfd < 0) return make_error(std::string("seccomp: memfd_create: ") + strerror(errno));
  rc = seccomp_export_bpf(c.ctx, mfd);
  if (rc < 0) {
    close(mfd);
    return fail("exporting BPF", rc);
  }
  off_t size = lseek(mfd, 0, SEEK_END);
  std::vector<sock_filter> prog(static_cast<size_t>(size) / sizeof(sock_filter));
  ssize_t n = pread(mfd, prog.data(), prog.size() * sizeof(sock_filter), 0);
  close(mfd);
  if (n != static_cast<ssize_t>(prog.size() * sizeof(sock_filter)) || prog.empty())
    return make_error("seccomp: reading the exported BPF failed");
  return prog;
}

}  // namespace

// Hand-written because libseccomp cannot compare one argument twice in a rule, and this needs
// "a dangerous bit is set AND the value is not the query 0xffffffff" (which has every bit set).
// The kernel reads the argument as an unsigned int, so only its low 32 bits (offset 16) matter.
std::vector<sock_filter> personality_program() {
  constexpr uint32_t kArchX86_64 = 0xc000003e;  // AUDIT_ARCH_X86_64
  return {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4),                          // 0: arch
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArchX86_64, 0, 6),         // 1: other arch -> 8
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),                          // 2: nr
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, 4),    // 3: other call -> 8
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),                         // 4: args[0] low half
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffu, 2, 0),         // 5: query -> 8
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, kPersonalityMask, 0, 1),   // 6: dangerous -> 7 else 8
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),           // 7
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                   // 8
  };
}

Result<std::vector<sock_filter>> seccomp_program(bool network) {
  static std::mutex mu;
  static std::optional<Result<std::vector<sock_filter>>> cache[2];
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[network ? 1 : 0];
  if (!slot) slot.emplace(build(network));
  return *slot;
}

}  // namespace m1::sandbox::detail
