// plan: turns a Command and a Policy into the Plan the child executes (see plan.h for why the child
// cannot compute any of this itself).
// Decision: paths are canonicalised here (symlinks resolved on the host) so a symlink inside the
// workspace can never redirect a mount target; mount operations are ordered by path depth, which is
// a valid order for nested targets (a path under another is always deeper), with tmpfs covers
// before binds at equal depth so an explicitly writable path wins over a hidden parent.
#include "sandbox/plan.h"

#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>

#include "sandbox/landlock_defs.h"

namespace m1::sandbox::detail {
namespace fs = std::filesystem;

const char* step_name(int32_t step) {
  static const char* const names[kStepCount] = {
      "none", "writing uid_map/gid_map", "making mounts private", "cloning a bind source (open_tree)",
      "making / read-only", "creating a tmpfs", "creating a mount point", "attaching a mount",
      "setting bind mount flags", "mounting /proc", "writing pid_max", "making /proc read-only",
      "setting the hostname", "changing to the working directory", "forking the command",
      "setsid", "opening /dev/null as stdin", "setting rlimits", "setting no_new_privs",
      "applying Landlock", "dropping capabilities", "loading the seccomp filter", "closing file descriptors",
      "clone"};
  return step >= 0 && step < kStepCount ? names[step] : "unknown step";
}

const char* step_layer(int32_t step) {
  switch (step) {
    case kStepUidMap: return "user namespace";
    case kStepMountPrivate: case kStepOpenTree: case kStepReadonlyRoot: case kStepTmpfs:
    case kStepMkdir: case kStepAttach: case kStepBindReadonly: return "mount namespace";
    case kStepProc: case kStepPidMax: case kStepProcReadonly: return "pid namespace";
    case kStepHostname: return "uts namespace";
    case kStepRlimit: return "rlimits";
    case kStepNoNewPrivs: return "no_new_privs";
    case kStepLandlock: return "Landlock";
    case kStepCaps: return "capability drop";
    case kStepSeccomp: return "seccomp";
    default: return "process setup";
  }
}

namespace {
std::atomic<int32_t> g_inject_fail_step{0};
}

void inject_failure_for_testing(int32_t step) {
  g_inject_fail_step = step;
  reset_availability_cache();
}

int landlock_abi() {
  long v = syscall(SYS_landlock_create_ruleset, nullptr, 0, ll::kCreateRulesetVersion);
  return v < 0 ? 0 : static_cast<int>(v);
}

namespace {

size_t depth(const fs::path& p) {
  size_t d = 0;
  for (const auto& part : p.relative_path()) {
    (void)part;
    ++d;
  }
  return d;
}

// `inner` strictly below `outer`?
bool is_under(const fs::path& inner, const fs::path& outer) {
  auto [a, b] = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
  return a == outer.end() && b != inner.end();
}

Result<fs::path> canonical_dir(const fs::path& p, const char* what) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (ec) return make_error(std::string("sandbox: ") + what + " '" + p.string() + "': " + ec.message(), 2);
  if (!fs::is_directory(c)) return make_error(std::string("sandbox: ") + what + " '" + p.string() +
                                              "' is not a directory", 2);
  return c;
}

std::string home_dir() {
  if (const char* h = std::getenv("HOME"); h && *h) return h;
  passwd pw{}, *res = nullptr;
  char buf[4096];
  if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res) return pw.pw_dir;
  return {};
}

int read_cap_last() {
  std::ifstream f("/proc/sys/kernel/cap_last_cap");
  int v = 40;
  f >> v;
  return v;
}

void add_bind(Plan& plan, const fs::path& src, const fs::path& dst, bool ro) {
  MountOp op;
  op.kind = MountOp::Bind;
  op.source = src.string();
  op.target = dst.string();
  op.bind_readonly = ro;
  op.clone_slot = static_cast<int>(plan.clone_fds.size());
  plan.clone_fds.push_back(-1);
  plan.ops.push_back(std::move(op));
}

MountOp cover(const fs::path& target, uint64_t size, bool ro) {
  MountOp op;
  op.kind = MountOp::Cover;
  op.target = target.string();
  op.size_opt = std::to_string(size);
  op.readonly = ro;
  return op;
}

const char* const kDevices[] = {"null", "zero", "full", "random", "urandom"};

// Orders the ops and records, for each tmpfs cover, the mount points later ops need inside it.
void finish_ops(Plan& plan) {
  std::stable_sort(plan.ops.begin(), plan.ops.end(), [](const MountOp& a, const MountOp& b) {
    size_t da = depth(a.target), db = depth(b.target);
    if (da != db) return da < db;
    return a.kind == MountOp::Cover && b.kind == MountOp::Bind;
  });
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    MountOp& c = plan.ops[i];
    if (c.kind != MountOp::Cover) continue;
    fs::path root = c.target;
    for (size_t j = i + 1; j < plan.ops.size(); ++j) {
      fs::path t = plan.ops[j].target;
      if (!is_under(t, root)) continue;
      fs::path rel = t.lexically_relative(root), acc;
      size_t n = depth(rel), k = 0;
      for (const auto& part : rel) {
        acc /= part;
        bool last = ++k == n;
        bool is_file = last && plan.ops[j].kind == MountOp::Bind && !fs::is_directory(plan.ops[j].source);
        auto& list = is_file ? c.touch : c.mkdirs;
        if (std::find(list.begin(), list.end(), acc.string()) == list.end()) list.push_back(acc.string());
      }
    }
  }
}

void add_landlock(Plan& plan, const Policy& policy, const std::vector<fs::path>& writable) {
  plan.landlock_abi = landlock_abi();
  int abi = plan.landlock_abi;
  uint64_t all = ll::fs_rights_for_abi(abi);
  plan.landlock_fs_handled = all;
  if (abi >= 4 && !policy.network) plan.landlock_net_handled = ll::kNetBindTcp | ll::kNetConnectTcp;
  if (abi >= 6) plan.landlock_scoped = ll::kScopeAbstractUnix | ll::kScopeSignal;
  plan.landlock_rules.push_back({"/", ll::kExecute | ll::kReadFile | ll::kReadDir});
  for (const auto& w : writable) plan.landlock_rules.push_back({w.string(), all});
  uint64_t dev = ll::kReadFile | ll::kWriteFile | (all & (ll::kTruncate | ll::kIoctlDev));
  for (const char* d : kDevices) plan.landlock_rules.push_back({std::string("/dev/") + d, dev});
}

}  // namespace

Result<Plan> make_plan(const Command& cmd, const Policy& policy, bool probe) {
  Plan plan;
  plan.probe = probe;
  plan.inject_fail_step = g_inject_fail_step.load();
  plan.confined = policy.mode == Mode::Enforce;
  if (cmd.argv.empty() && !probe) return make_error("sandbox: empty command (argv is empty)", 2);
  if (!cmd.argv.empty() && cmd.argv[0].empty()) return make_error("sandbox: empty program name (argv[0])", 2);

  fs::path ws;
  if (!policy.workspace.empty()) {
    M1_ASSIGN_OR_RETURN(ws, canonical_dir(policy.workspace, "workspace"));
    if (ws == "/") return make_error("sandbox: the workspace cannot be '/' (it would make everything writable)", 2);
  } else if (plan.confined) {
    return make_error("sandbox: Policy::workspace is empty; the sandbox needs a workspace directory", 2);
  }
  fs::path cwd = cmd.cwd.empty() ? ws : (cmd.cwd.is_absolute() ? cmd.cwd : ws / cmd.cwd);
  if (!cwd.empty()) {
    M1_ASSIGN_OR_RETURN(cwd, canonical_dir(cwd, "working directory"));
    plan.cwd = cwd.string();
  }

  plan.cpu_seconds = policy.cpu_seconds;
  plan.memory_bytes = policy.memory_bytes;
  plan.max_processes = policy.max_processes;
  plan.max_file_bytes = policy.max_file_bytes;
  plan.max_open_files = policy.max_open_files;

  if (plan.confined) {
    plan.clone_flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (!policy.network) plan.clone_flags |= CLONE_NEWNET;
    plan.uid_map = std::to_string(geteuid()) + " " + std::to_string(geteuid()) + " 1\n";
    plan.gid_map = std::to_string(getegid()) + " " + std::to_string(getegid()) + " 1\n";
    plan.cap_last = read_cap_last();
    if (policy.max_processes > 0) {
      plan.proc_pid_max = std::to_string(std::max<uint64_t>(301, policy.max_processes + 1));
      plan.pid_max_required = geteuid() == 0;
    }

    std::vector<fs::path> writable = {ws};
    for (const auto& w : policy.extra_writable) {
      std::error_code ec;
      fs::path c = fs::canonical(w, ec);
      if (ec) return make_error("sandbox: extra writable path '" + w.string() + "': " + ec.message(), 2);
      if (c == "/") return make_error("sandbox: '/' cannot be writable", 2);
      writable.push_back(c);
    }
    uint64_t tmp_size = policy.memory_bytes ? policy.memory_bytes : (1ull << 30);
    plan.ops.push_back(cover("/tmp", tmp_size, false));
    MountOp dev = cover("/dev", 1 << 20, true);
    dev.symlinks = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
                    {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
    plan.ops.push_back(std::move(dev));
    plan.ops.push_back(cover("/dev/shm", tmp_size, false));
    for (const char* d : kDevices) add_bind(plan, std::string("/dev/") + d, std::string("/dev/") + d, false);

    std::vector<fs::path> hidden = {"/root"};
    if (auto h = home_dir(); !h.empty()) hidden.push_back(h);
    for (const auto& h : policy.hidden) hidden.push_back(h);
    std::vector<fs::path> seen;
    for (const auto& h : hidden) {
      std::error_code ec;
      fs::path c = fs::canonical(h, ec);
      if (ec || c == "/" || std::find(seen.begin(), seen.end(), c) != seen.end()) continue;  // nothing to hide
      seen.push_back(c);
      if (fs::is_directory(c)) plan.ops.push_back(cover(c, 1 << 20, true));
      else add_bind(plan, "/dev/null", c, true);
    }
    // /run holds the host's service sockets (docker, dbus, systemd, XDG_RUNTIME_DIR); connecting to a
    // UNIX socket ignores read-only mounts, so hide them all. DNS config may live there (network on).
    if (fs::is_directory("/run") && !fs::is_symlink("/run")) {
      plan.ops.push_back(cover("/run", 1 << 20, true));
      std::error_code ec;
      fs::path resolv = fs::canonical("/etc/resolv.conf", ec);
      if (policy.network && !ec && is_under(resolv, "/run")) add_bind(plan, resolv.parent_path(), resolv.parent_path(), true);
    }
    for (const auto& w : writable) add_bind(plan, w, w, false);
    if (policy.git_readonly && fs::exists(ws / ".git")) add_bind(plan, ws / ".git", ws / ".git", true);
    finish_ops(plan);

    writable.push_back("/tmp");
    writable.push_back("/dev/shm");
    add_landlock(plan, policy, writable);
    M1_ASSIGN_OR_RETURN(plan.bpf, seccomp_program(policy.network));
    plan.bpf_personality = personality_program();
  }

  // argv[0] is looked up in the PATH of the command's environment, like execvp would.
  if (!cmd.argv.empty()) {
    const std::string& prog = cmd.argv[0];
    if (prog.find('/') != std::string::npos) {
      plan.exec_candidates.push_back(prog);
    } else {
      auto it = policy.env.find("PATH");
      std::string path = it != policy.env.end() ? it->second : "/usr/local/bin:/usr/bin:/bin";
      size_t start = 0;
      for (;;) {
        size_t end = path.find(':', start);
        std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        plan.exec_candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + prog);
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
  }
  plan.argv_store = cmd.argv;
  for (const auto& [k, v] : policy.env) {
    if (k.empty() || k.find('=') != std::string::npos)
      return make_error("sandbox: invalid environment variable name '" + k + "'", 2);
    plan.envp_store.push_back(k + "=" + v);
  }
  for (auto& s : plan.argv_store) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  for (auto& s : plan.envp_store) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  return plan;
}

}  // namespace m1::sandbox::detail
