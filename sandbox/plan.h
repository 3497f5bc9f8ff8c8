// plan: everything the sandboxed child needs, computed in the parent BEFORE clone().
// Decision: the child of clone() runs inside a possibly multi-threaded process, so it may only make
// raw system calls (no malloc, no locks, no iostreams). Every string, path list, argv/envp array and
// the seccomp BPF program is therefore built here, and child.cpp only walks these arrays.
#pragma once
#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

namespace m1::sandbox::detail {

// One step of the mount setup, applied in order inside the new mount namespace.
struct MountOp {
  enum Kind { Cover, Bind } kind = Cover;
  std::string target;                 // absolute path (as the command will see it)
  // Cover: a fresh tmpfs prepared detached (dirs, files, symlinks made inside), then attached.
  std::string size_opt;               // tmpfs "size=" value
  bool readonly = false;
  std::vector<std::string> mkdirs;    // relative to the tmpfs root, parents first
  std::vector<std::string> touch;     // relative empty files (mount points for device binds)
  std::vector<std::pair<std::string, std::string>> symlinks;  // (link target, relative name)
  // Bind: a clone of `source` taken before anything was covered (open_tree), attached at target.
  std::string source;
  int clone_slot = -1;                // index into Plan::clone_fds (filled in the child)
  bool bind_readonly = false;
};

// Where setup failed: the child reports {step, errno, index} and the parent turns it into text.
enum Step : int32_t {
  kStepNone = 0, kStepUidMap, kStepMountPrivate, kStepOpenTree, kStepReadonlyRoot, kStepTmpfs,
  kStepMkdir, kStepAttach, kStepBindReadonly, kStepProc, kStepPidMax, kStepProcReadonly,
  kStepHostname, kStepChdir, kStepFork, kStepSetsid, kStepStdin, kStepRlimit, kStepNoNewPrivs,
  kStepLandlock, kStepCaps, kStepSeccomp, kStepCloseFds, kStepClone, kStepCount
};
const char* step_name(int32_t step);
const char* step_layer(int32_t step);   // "user namespace", "mount namespace", "Landlock", ...

// What the child writes on the status pipe (one record, then the pipe closes).
struct StatusRecord {
  enum Kind : int32_t { None = 0, SetupError = 1, ExecError = 2, Exited = 3, Signaled = 4 };
  int32_t kind = None;
  int32_t step = 0;
  int32_t err = 0;     // errno for SetupError/ExecError
  int32_t value = 0;   // exit code, signal, or the mount-op index for SetupError
};

struct LandlockRule {
  std::string path;
  uint64_t access = 0;
};

struct Plan {
  bool confined = true;               // false: Mode::Off (no namespaces, no Landlock, no seccomp)
  bool probe = false;                 // check_available(): apply every layer, then _exit(0)
  bool own_session = true;            // unconfined wrapper calls setsid (false: the helper did)
  int clone_flags = 0;
  // user namespace
  std::string uid_map, gid_map;
  // mounts
  std::vector<MountOp> ops;
  std::vector<int> clone_fds;         // one slot per Bind op
  std::string proc_pid_max;           // written to /proc/sys/kernel/pid_max of the new pid ns
  bool pid_max_required = false;      // true for a root caller: RLIMIT_NPROC does not bind uid 0
  std::string cwd;
  // limits
  uint64_t cpu_seconds = 0, memory_bytes = 0, max_processes = 0, max_file_bytes = 0,
           max_open_files = 0;
  int cap_last = 40;
  // Landlock
  int landlock_abi = 0;
  uint64_t landlock_fs_handled = 0;
  uint64_t landlock_net_handled = 0;
  uint64_t landlock_scoped = 0;
  std::vector<LandlockRule> landlock_rules;
  // seccomp
  std::vector<sock_filter> bpf;
  std::vector<sock_filter> bpf_personality;  // stacked second filter (see seccomp_filter.cpp)
  // exec
  std::vector<std::string> exec_candidates;  // argv[0] resolved against PATH, tried in order
  std::vector<std::string> argv_store, envp_store;
  std::vector<char*> argv, envp;             // NUL-terminated arrays pointing into *_store
  // fds (parent-side numbers, inherited by the child)
  int32_t inject_fail_step = 0;  // tests only: the child fails at this step with EPERM
  int out_w = -1;       // stdout+stderr of the command
  int status_w = -1;    // StatusRecord channel
};

// Builds the plan for one run; a user mistake (missing workspace, empty argv) becomes an Error.
Result<Plan> make_plan(const Command& cmd, const Policy& policy, bool probe);

// The seccomp program (network on or off), compiled once with libseccomp and cached.
Result<std::vector<sock_filter>> seccomp_program(bool network);

// The small second filter for personality() arguments.
std::vector<sock_filter> personality_program();

// Landlock ABI version of the running kernel (0 when Landlock is unavailable).
int landlock_abi();

// Tests only: make every later child fail at `step` (as if the kernel refused it), and forget the
// cached check_available() result. Lets the suite prove fail-closed behaviour on a capable machine.
void inject_failure_for_testing(int32_t step);
void reset_availability_cache();  // sandbox.cpp
// Tests only: -1 auto (helper when found), 0 always clone in-process, 1 require the helper.
void use_helper_for_testing(int mode);
std::string helper_path_for_testing();

// The plan as bytes for the m1-sandbox-exec helper, and back (plan_io.cpp).
std::string serialize_plan(const Plan& plan);
Result<Plan> deserialize_plan(const std::string& bytes);

// Starts the child per plan; returns its pid (the init of the new pid namespace when confined).
// Runs in the parent; the child side lives in child.cpp and only makes raw system calls.
Result<pid_t> spawn(Plan& plan);

}  // namespace m1::sandbox::detail
