// `m1 sandbox run [--workspace DIR] [--network] [--timeout S] [--sandbox off] -- CMD ARGS...`:
// runs one command under the same policy the agent's tools use, so users can see what it allows.
// `m1 sandbox check` reports whether every confinement layer is available here.
// Decision: the command gets a small environment (PATH, LANG, TERM, ... plus --env), never the
// caller's whole environment, which may hold API keys. Its exit code becomes ours; 124 on timeout
// (like timeout(1)), 128+N when killed by signal N.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "sandbox/sandbox.h"

namespace {
namespace sb = m1::sandbox;

struct Options {
  std::string workspace;
  bool network = false;
  double timeout_s = 120;
  std::string sandbox_mode = "on";
  bool git_readonly = false;
  std::vector<std::string> writable, hidden, env;
  size_t output_cap = 0;
  std::vector<std::string> argv;
};

int run_command(const Options& o) {
  sb::Policy policy;
  if (o.sandbox_mode == "off") {
    policy.mode = sb::Mode::Off;
    std::fprintf(stderr, "m1: --sandbox off: running UNCONFINED (requested by the user)\n");
  }
  policy.workspace = o.workspace.empty() ? std::filesystem::current_path() : std::filesystem::path(o.workspace);
  policy.network = o.network;
  policy.timeout_s = o.timeout_s;
  policy.git_readonly = o.git_readonly;
  for (const auto& w : o.writable) policy.extra_writable.push_back(w);
  for (const auto& h : o.hidden) policy.hidden.push_back(h);
  for (const char* k : {"PATH", "LANG", "LC_ALL", "TERM", "TZ", "USER", "LOGNAME", "HOME"})
    if (const char* v = std::getenv(k)) policy.env[k] = v;
  if (!policy.env.count("PATH")) policy.env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      m1::cli::fail(m1::make_error("--env expects NAME=VALUE, got '" + kv + "'", 2));
      return 2;
    }
    policy.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  // The CLI streams everything live; the cap only bounds what run() keeps in memory.
  policy.output_cap_bytes = o.output_cap ? o.output_cap : 64 * 1024;
  sb::Command cmd;
  cmd.argv = o.argv;
  auto r = sb::run(cmd, policy, nullptr, [](std::string_view chunk) {
    std::fwrite(chunk.data(), 1, chunk.size(), stdout);
    std::fflush(stdout);
  });
  if (!r.ok()) {
    m1::cli::fail(r.error());
    return r.error().code ? r.error().code : 1;
  }
  if (r->timed_out) {
    std::fprintf(stderr, "m1: command timed out after %.1f s (everything it started was killed)\n", o.timeout_s);
    return 124;
  }
  if (r->term_signal) return 128 + r->term_signal;
  return r->exit_code;
}

}  // namespace

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto* sandbox = root.add_subcommand("sandbox", "Run a command in the sandbox the agent's tools use");
  sandbox->require_subcommand(1);
  auto opts = std::make_shared<Options>();
  auto* run = sandbox->add_subcommand("run", "Run CMD ARGS... confined; exit code = the command's");
  run->add_option("--workspace", opts->workspace, "Writable directory and default cwd (default: current dir)")
      ->check(CLI::ExistingDirectory);
  run->add_flag("--network", opts->network, "Allow network access (default: no network)");
  run->add_option("--timeout", opts->timeout_s, "Wall-clock limit in seconds; the whole tree is killed")
      ->check(CLI::PositiveNumber);
  run->add_option("--sandbox", opts->sandbox_mode, "on (default) or off: off runs UNCONFINED")
      ->check(CLI::IsMember({"on", "off"}));
  run->add_flag("--git-readonly", opts->git_readonly, "Mount WORKSPACE/.git read-only");
  run->add_option("--writable", opts->writable, "Another writable directory (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--hide", opts->hidden, "Another path to hide (repeatable; home is always hidden)")
      ->allow_extra_args(false);
  run->add_option("--env", opts->env, "NAME=VALUE added to the command's environment (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--output-cap", opts->output_cap, "Bytes of output kept in memory (head + tail)");
  run->add_option("command", opts->argv, "The command and its arguments (after --)")->required();
  run->callback([opts] { m1::cli::set_exit_code(run_command(*opts)); });

  auto* check = sandbox->add_subcommand("check", "Check that every confinement layer is available");
  check->callback([] {
    auto st = sb::check_available();
    if (!st.ok()) {
      m1::cli::fail(st.error());
      return;
    }
    std::printf("sandbox: all layers available (user/mount/pid/net/ipc/uts namespaces, Landlock, seccomp, "
                "rlimits)\n");
  });
});
