// tools/process.cpp: fork/exec with pipes for stdout/stderr and optional stdin text.
// poll() drains both pipes together so a chatty stderr can never deadlock a full stdout pipe.
#include "tools/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace m1::tools {

std::vector<std::string> git_argv(std::initializer_list<std::string> args) {
  std::vector<std::string> v = {"git",
                                "-c", "core.fsmonitor=false",
                                "-c", "core.hooksPath=/dev/null",
                                "-c", "core.pager=cat",
                                "-c", "advice.detachedHead=false",
                                "-c", "safe.directory=*"};
  v.insert(v.end(), args.begin(), args.end());
  return v;
}

Result<ProcessOutput> run_process(const std::vector<std::string>& argv,
                                  const std::filesystem::path& cwd,
                                  const std::optional<std::string>& input) {
  if (argv.empty()) return make_error("run_process: empty argv");
  int out_p[2], err_p[2], in_p[2];
  if (pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC) || pipe2(in_p, O_CLOEXEC))
    return make_error(std::string("pipe failed: ") + std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) return make_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(in_p[0], 0);
    dup2(out_p[1], 1);
    dup2(err_p[1], 2);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    signal(SIGPIPE, SIG_DFL);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out_p[1]);
  close(err_p[1]);
  close(in_p[0]);
  if (input) {
    // Inputs here are small (patches); write before reading, ignoring EPIPE from early exits.
    auto old = signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    while (off < input->size()) {
      ssize_t n = write(in_p[1], input->data() + off, input->size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    signal(SIGPIPE, old);
  }
  close(in_p[1]);
  ProcessOutput po;
  pollfd fds[2] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? po.out : po.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  po.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (po.exit_code == 127 && po.out.empty() && po.err.empty())
    return make_error("could not run '" + argv[0] + "' (not installed or not in PATH?)");
  return po;
}

}  // namespace m1::tools
