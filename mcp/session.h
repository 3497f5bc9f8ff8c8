// mcp/session.h: the JSON-RPC session both sides use (the SDKs' "Protocol" layer): outgoing
// requests with ids, timeouts, progress routing and cancellation; incoming requests dispatched
// to handlers on worker threads (never the reader thread, so a handler may itself send a
// request — sampling, elicitation — and wait for the answer); ping answered built-in.
// Handlers answer with a JSON result or by throwing RpcError (inside mcp/ only).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.h"
#include "mcp/transport.h"
#include "mcp/types.h"

namespace m1::mcp {

class Session;

struct RequestOptions {
  std::optional<std::chrono::milliseconds> timeout;             // default: Session::Options
  std::function<void(const json& progress_params)> on_progress;  // adds _meta.progressToken
  bool reset_timeout_on_progress = true;
  const std::atomic<bool>* cancel = nullptr;  // set -> notifications/cancelled + error
  json related_request_id;                    // the incoming request this one serves
};

// The outcome of an outgoing request: a result or the peer's (or our) RpcError.
struct Reply {
  json result;
  std::optional<RpcError> error;
  bool ok() const { return !error; }
};

// Per incoming request: its id, _meta, cancellation flag and a way to talk back on its stream.
class RequestContext {
 public:
  json id;
  std::string method;
  json meta;  // params._meta (may be null)
  std::atomic<bool> cancelled{false};
  std::shared_ptr<Session> session;

  bool has_progress_token() const { return meta.is_object() && meta.contains("progressToken"); }
  void progress(double progress, std::optional<double> total, const std::string& message = "");
  Reply request(const std::string& method, const json& params, RequestOptions opts = {});
  Status notify(const std::string& method, const json& params);
  void close_stream();  // Streamable HTTP: end this request's SSE stream (client polls back)
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  struct Options {
    std::chrono::milliseconds request_timeout{60000};
    std::string name = "mcp";  // for log lines
  };
  using RequestHandler = std::function<json(const json& params, RequestContext& ctx)>;
  using NotificationHandler = std::function<void(const json& params)>;
  // Called before a request handler runs; an RpcError refuses the request (e.g. not initialized).
  using Gate = std::function<std::optional<RpcError>(const std::string& method)>;

  static std::shared_ptr<Session> create(std::shared_ptr<Transport> transport, Options opts);
  ~Session();

  void on_request(const std::string& method, RequestHandler h);
  // Runs on the reader thread: must not block on a request of this session.
  void on_notification(const std::string& method, NotificationHandler h);
  void set_gate(Gate g);
  void set_on_close(std::function<void()> fn);

  Status start();
  Reply request(const std::string& method, const json& params, RequestOptions opts = {});
  Status notify(const std::string& method, const json& params, const json& related = nullptr);
  void close();
  bool closed() const { return closed_; }
  Transport& transport() { return *transport_; }

  // Entry point for the transport (also usable directly by tests).
  void handle_message(const json& msg);

 private:
  Session(std::shared_ptr<Transport> transport, Options opts);
  struct Pending;
  void handle_request(const json& msg);
  void handle_response(const json& msg, bool is_error);
  void handle_notification(const json& msg);
  void finish_request(const std::shared_ptr<RequestContext>& ctx, const json& result,
                      const std::optional<RpcError>& error);
  void on_transport_closed(const std::string& reason);

  std::shared_ptr<Transport> transport_;
  Options opts_;
  std::mutex mu_;
  std::map<std::string, RequestHandler> request_handlers_;
  std::map<std::string, NotificationHandler> notification_handlers_;
  Gate gate_;
  std::function<void()> on_close_;
  std::map<std::string, std::shared_ptr<Pending>> pending_;             // by id.dump()
  std::map<std::string, std::shared_ptr<RequestContext>> in_flight_;    // by id.dump()
  std::map<std::string, std::shared_ptr<Pending>> progress_routes_;     // by token.dump()
  std::atomic<long long> next_id_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> started_{false};
};

// Runs `fn` on a process-wide elastic pool of worker threads (grows when all are busy).
void run_on_worker(std::function<void()> fn);

}  // namespace m1::mcp
