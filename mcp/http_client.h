// mcp/http_client.h: the Streamable HTTP client transport on cpp-httplib.
// Each outgoing request is POSTed from its own thread (the answer may be a long SSE stream);
// notifications and responses are POSTed inline (202 expected). An SSE stream that ends
// before its response is resumed with GET + Last-Event-ID after the server's `retry:` delay
// (SEP-1699). After initialization a standalone GET stream carries server-initiated messages
// (skipped if the server answers 405). Auth: static headers from config, plus an optional
// provider asked for a bearer token and told about 401/403 challenges (OAuth lives there).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mcp/transport.h"

namespace httplib { class Client; }

namespace m1::mcp {

// Supplies Authorization for requests; on a 401/403 it may obtain a new token (OAuth) and ask
// for a retry. The default (none) sends no Authorization beyond configured headers.
class AuthProvider {
 public:
  virtual ~AuthProvider() = default;
  virtual std::string authorization_header() = 0;  // "" = none
  // status 401/403 with the WWW-Authenticate value; true = try the request again.
  virtual bool on_unauthorized(int status, const std::string& www_authenticate) = 0;
};

struct HttpClientOptions {
  std::string url;                               // http(s)://host[:port]/path
  std::map<std::string, std::string> headers;    // sent with every request
  std::shared_ptr<AuthProvider> auth;
  int connect_timeout_s = 10;
  int read_timeout_s = 3600;                     // SSE streams can be quiet for long
  bool open_standalone_stream = true;
  int max_resume_attempts = 5;
};

class HttpClientTransport : public Transport, public std::enable_shared_from_this<HttpClientTransport> {
 public:
  // Parses the URL; the error names it and what is wrong.
  static Result<std::shared_ptr<HttpClientTransport>> create(HttpClientOptions opts);
  ~HttpClientTransport() override;
  Status start(MessageFn on_message, CloseFn on_close) override;
  Status send(const nlohmann::json& msg, const SendOptions& opts = {}) override;
  void close() override;
  void set_protocol_version(const std::string& v) override;
  std::string session_id() const;

 private:
  explicit HttpClientTransport(HttpClientOptions opts) : opts_(std::move(opts)) {}
  struct PostOutcome;
  std::unique_ptr<httplib::Client> make_client();
  std::map<std::string, std::string> common_headers();
  // POSTs `body`; delivers JSON or SSE messages; resumes SSE if cut before `wait_id` answered.
  Status post(const nlohmann::json& msg, bool is_request);
  void read_sse_stream(httplib::Client& cli, const std::string& method, const std::string& body,
                       const std::map<std::string, std::string>& extra, bool expect_response,
                       const nlohmann::json& wait_id);
  void standalone_loop();
  void deliver(const nlohmann::json& msg);
  void track(httplib::Client* c, bool add);

  HttpClientOptions opts_;
  std::string base_;  // scheme://host:port
  std::string path_;
  MessageFn on_message_;
  CloseFn on_close_;
  mutable std::mutex mu_;
  std::string session_id_;
  std::string protocol_version_;
  std::set<httplib::Client*> active_;
  void spawn(std::function<void(HttpClientTransport&)> fn);  // detached worker, counted
  int running_ = 0;
  std::condition_variable threads_cv_;
  static thread_local bool in_worker_;
  std::atomic<bool> closed_{false};
  std::atomic<bool> standalone_started_{false};
};

}  // namespace m1::mcp
