// sandbox: runs one command confined (agent.md "Sandbox"): user/mount/pid/net/ipc/uts namespaces,
// read-only root, writable workspace, private /tmp, hidden home, Landlock, seccomp, rlimits,
// a wall-clock timeout that kills the whole process group, output capped while captured.
// Fail-closed: if confinement cannot be set up, run() returns an error unless mode == Off.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace m1::sandbox {

enum class Mode { Enforce, Off };  // Off only ever comes from the user (--sandbox off), never the model

struct Policy {
  Mode mode = Mode::Enforce;
  std::filesystem::path workspace;                  // writable; the command's default cwd
  std::vector<std::filesystem::path> extra_writable;
  std::vector<std::filesystem::path> hidden;        // made invisible (home is always hidden)
  bool network = false;                             // false: only AF_UNIX sockets, no interfaces
  bool git_readonly = false;                        // workspace/.git mounted read-only
  double timeout_s = 120;                           // wall clock; kills the process group
  uint64_t cpu_seconds = 600;
  uint64_t memory_bytes = 4ull << 30;
  uint64_t max_processes = 256;
  uint64_t max_file_bytes = 1ull << 30;
  uint64_t max_open_files = 1024;
  size_t output_cap_bytes = 64 * 1024;              // kept in RunResult::output (head + tail)
  std::map<std::string, std::string> env;           // the whole environment the command sees
};

struct Command {
  std::vector<std::string> argv;                    // argv[0] looked up in PATH of env
  std::filesystem::path cwd;                        // empty: the workspace
  std::filesystem::path full_output_path;           // if set, the whole output is written there
};

struct RunResult {
  int exit_code = -1;                               // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  std::string output;                               // stdout+stderr interleaved, capped: head +
                                                    // "[... N bytes elided ...]" + tail
  uint64_t output_bytes = 0;                        // total produced
  double wall_seconds = 0;
};

// Why confinement is unavailable here, or ok.
Status check_available();

// SIGKILLs every command this process is running through run() (their groups, so nothing they
// started survives, --sandbox off included). For a process about to _exit (a second Ctrl-C):
// only atomic loads and kill(2), so any thread may call it.
void kill_running();

// Runs cmd under policy. `cancel` (may be null) is polled; when it turns true the group is killed.
// `on_output` (may be empty) receives output chunks as they arrive (for streaming to a UI).
Result<RunResult> run(const Command& cmd, const Policy& policy,
                      const std::atomic<bool>* cancel = nullptr,
                      const std::function<void(std::string_view)>& on_output = {});

}  // namespace m1::sandbox
