// mcp/stdio_transport.h: newline-delimited JSON over a pair of file descriptors.
// FdTransport serves `m1 serve --stdio` (stdin/stdout; logs go to stderr only) and is the
// base of ProcessTransport, which spawns an MCP server (command, args, env) with pipes and
// ends it on close: stdin closed, then SIGTERM, then SIGKILL to its process group.
// Lines longer than max_message_bytes are answered with an Invalid Request error and skipped;
// unparsable lines with a Parse error (id null); the reader keeps going either way.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "mcp/transport.h"

namespace m1::mcp {

class FdTransport : public Transport {
 public:
  FdTransport(int in_fd, int out_fd, size_t max_message_bytes = 16 << 20);
  ~FdTransport() override;
  Status start(MessageFn on_message, CloseFn on_close) override;
  Status send(const nlohmann::json& msg, const SendOptions& opts = {}) override;
  void close() override;
  // Blocks until the reader saw EOF or close() was called.
  void wait_closed();

 protected:
  virtual void on_reader_exit() {}
  void close_output();  // closes out_fd_ under the write lock
  int in_fd_;
  int out_fd_;

 private:
  void reader_loop();
  void handle_line(const std::string& line);
  void reject_oversized();
  size_t max_bytes_;
  MessageFn on_message_;
  CloseFn on_close_;
  std::thread reader_;
  std::mutex write_mu_;
  std::mutex state_mu_;
  std::condition_variable state_cv_;
  std::atomic<bool> stop_{false};
  bool reader_done_ = false;
  bool close_reported_ = false;
};

struct ProcessSpec {
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to (and overriding) the inherited environment
  std::string cwd;                         // empty: inherit
  bool quiet_stderr = false;               // child's stderr to /dev/null instead of ours
};

class ProcessTransport : public FdTransport {
 public:
  // Spawns the process; an error names the command and the reason.
  static Result<std::shared_ptr<ProcessTransport>> spawn(const ProcessSpec& spec);
  ~ProcessTransport() override;
  void close() override;
  pid_t pid() const { return pid_; }

 private:
  ProcessTransport(int in_fd, int out_fd, pid_t pid) : FdTransport(in_fd, out_fd), pid_(pid) {}
  pid_t pid_;
  std::atomic<bool> reaped_{false};
};

}  // namespace m1::mcp
