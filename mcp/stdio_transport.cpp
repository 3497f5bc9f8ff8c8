// mcp/stdio_transport.cpp: NDJSON over fds and spawned server processes (see stdio_transport.h).
// The reader polls with a 100 ms timeout so close() can stop it without closing stdin under
// another thread; writes are serialized by one mutex so lines never interleave.
#include "mcp/stdio_transport.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "mcp/types.h"

extern char** environ;

namespace m1::mcp {

FdTransport::FdTransport(int in_fd, int out_fd, size_t max_message_bytes)
    : in_fd_(in_fd), out_fd_(out_fd), max_bytes_(max_message_bytes) {}

FdTransport::~FdTransport() {
  stop_ = true;
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id()) reader_.detach();
    else reader_.join();
  }
}

Status FdTransport::start(MessageFn on_message, CloseFn on_close) {
  on_message_ = std::move(on_message);
  on_close_ = std::move(on_close);
  reader_ = std::thread([this] { reader_loop(); });
  return {};
}

void FdTransport::reader_loop() {
  std::string buf;
  bool discarding = false;  // inside an oversized line: drop bytes until the next newline
  char chunk[65536];
  std::string reason = "end of input";
  while (!stop_) {
    pollfd pfd{in_fd_, POLLIN, 0};
    int pr = ::poll(&pfd, 1, 100);
    if (pr < 0) {
      if (errno == EINTR) continue;
      reason = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (pr == 0) continue;
    ssize_t n = ::read(in_fd_, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      reason = std::string("read: ") + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    size_t start = 0;
    for (ssize_t i = 0; i < n; ++i) {
      if (chunk[i] != '\n') continue;
      if (discarding) {
        discarding = false;
      } else {
        buf.append(chunk + start, i - start);
        if (!buf.empty() && buf.back() == '\r') buf.pop_back();
        if (buf.size() > max_bytes_) reject_oversized();
        else if (!buf.empty()) handle_line(buf);
      }
      buf.clear();
      start = i + 1;
    }
    if (!discarding) buf.append(chunk + start, n - start);
    if (!discarding && buf.size() > max_bytes_) {  // no newline yet: drop the rest of this line
      reject_oversized();
      buf.clear();
      discarding = true;
    }
  }
  on_reader_exit();
  bool report = false;
  {
    std::lock_guard lk(state_mu_);
    reader_done_ = true;
    report = !close_reported_ && !stop_;
    close_reported_ = true;
  }
  state_cv_.notify_all();
  if (report && on_close_) on_close_(reason);
}

void FdTransport::reject_oversized() {
  (void)send(make_error_response(
      nullptr, RpcError{err::kInvalidRequest,
                        "message exceeds the limit of " + std::to_string(max_bytes_) + " bytes", nullptr}));
}

void FdTransport::handle_line(const std::string& line) {
  json msg = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded()) {
    (void)send(make_error_response(nullptr, RpcError{err::kParseError, "Parse error: invalid JSON", nullptr}));
    return;
  }
  if (on_message_) on_message_(msg);
}

Status FdTransport::send(const nlohmann::json& msg, const SendOptions&) {
  std::string line = msg.dump(-1, ' ', false, json::error_handler_t::replace);
  line += '\n';
  std::lock_guard lk(write_mu_);
  if (out_fd_ < 0) return make_error("transport closed");
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::write(out_fd_, line.data() + off, line.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(std::string("write failed: ") + std::strerror(errno));
    }
    off += static_cast<size_t>(w);
  }
  return {};
}

void FdTransport::close() {
  stop_ = true;
  {
    std::lock_guard lk(state_mu_);
    close_reported_ = true;
  }
  if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
}

void FdTransport::close_output() {
  std::lock_guard lk(write_mu_);
  if (out_fd_ >= 0) ::close(out_fd_);
  out_fd_ = -1;
}

void FdTransport::wait_closed() {
  std::unique_lock lk(state_mu_);
  state_cv_.wait(lk, [&] { return reader_done_; });
}

// ---- ProcessTransport --------------------------------------------------------------------

Result<std::shared_ptr<ProcessTransport>> ProcessTransport::spawn(const ProcessSpec& spec) {
  if (spec.command.empty()) return make_error("MCP server config has an empty \"command\"");
  int to_child[2], from_child[2], err_pipe[2];
  if (::pipe2(to_child, O_CLOEXEC) || ::pipe2(from_child, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC))
    return make_error(std::string("pipe: ") + std::strerror(errno));
  // Environment built before fork (no allocation in the child).
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : spec.env) env[k] = v;
  std::vector<std::string> env_strs, argv_strs;
  for (const auto& [k, v] : env) env_strs.push_back(k + "=" + v);
  argv_strs.push_back(spec.command);
  for (const auto& a : spec.args) argv_strs.push_back(a);
  std::vector<char*> envp, argv;
  for (auto& s : env_strs) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv_strs) argv.push_back(s.data());
  argv.push_back(nullptr);
  // PATH lookup with the child's PATH (execvpe uses the caller's; resolve here instead).
  std::string exe = spec.command;
  if (exe.find('/') == std::string::npos) {
    std::string path = env.count("PATH") ? env["PATH"] : "/usr/bin:/bin";
    size_t pos = 0;
    exe.clear();
    while (pos <= path.size()) {
      size_t c = path.find(':', pos);
      std::string dir = path.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
      std::string cand = (dir.empty() ? "." : dir) + "/" + spec.command;
      if (::access(cand.c_str(), X_OK) == 0) { exe = cand; break; }
      if (c == std::string::npos) break;
      pos = c + 1;
    }
    if (exe.empty()) return make_error("MCP server command not found on PATH: " + spec.command);
  }
  pid_t pid = ::fork();
  if (pid < 0) return make_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(to_child[0], 0);
    ::dup2(from_child[1], 1);
    if (spec.quiet_stderr) {
      int devnull = ::open("/dev/null", O_WRONLY);
      if (devnull >= 0) ::dup2(devnull, 2);
    }
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(err_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execve(exe.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!::write(err_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t got = ::read(err_pipe[0], &child_errno, sizeof child_errno);
  ::close(err_pipe[0]);
  if (got == sizeof child_errno) {
    ::waitpid(pid, nullptr, 0);
    ::close(to_child[1]);
    ::close(from_child[0]);
    return make_error("cannot start MCP server " + spec.command + ": " + std::strerror(child_errno));
  }
  return std::shared_ptr<ProcessTransport>(new ProcessTransport(from_child[0], to_child[1], pid));
}

ProcessTransport::~ProcessTransport() { ProcessTransport::close(); }

void ProcessTransport::close() {
  FdTransport::close();
  if (reaped_.exchange(true)) return;
  // Closing its stdin is the polite shutdown for a stdio server (then SIGTERM, then SIGKILL).
  close_output();
  auto wait_for = [&](int ms) {
    for (int i = 0; i < ms / 10; ++i) {
      int status;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || r < 0) return true;
      ::usleep(10000);
    }
    return false;
  };
  if (!wait_for(2000)) {
    ::kill(-pid_, SIGTERM);
    ::kill(pid_, SIGTERM);
    if (!wait_for(2000)) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ::close(in_fd_);
}

}  // namespace m1::mcp
