// mcp/session.cpp: the JSON-RPC session (see session.h). Pending outgoing requests wait on a
// condition variable polled every 20 ms so a cancel flag or an extended deadline (progress) is
// seen promptly; responses complete them directly on the reader thread.
#include "mcp/session.h"

#include <deque>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace m1::mcp {

// ---- worker pool -------------------------------------------------------------------------

namespace {
class WorkerPool {
 public:
  static WorkerPool& shared() {
    static WorkerPool* p = new WorkerPool();  // leaked on purpose: workers may outlive main
    return *p;
  }
  void run(std::function<void()> fn) {
    std::unique_lock lk(mu_);
    queue_.push_back(std::move(fn));
    if (idle_ == 0 && threads_ < kMaxThreads) {
      ++threads_;
      std::thread([this] { loop(); }).detach();
    } else {
      cv_.notify_one();
    }
  }

 private:
  static constexpr int kMaxThreads = 512;
  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      ++idle_;
      bool got = cv_.wait_for(lk, std::chrono::seconds(30), [&] { return !queue_.empty(); });
      --idle_;
      if (!got) {  // idle long enough: let the pool shrink
        --threads_;
        return;
      }
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      fn();
      lk.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  int idle_ = 0;
  int threads_ = 0;
};
}  // namespace

void run_on_worker(std::function<void()> fn) { WorkerPool::shared().run(std::move(fn)); }

// ---- pending outgoing requests -----------------------------------------------------------

struct Session::Pending {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Reply reply;
  std::chrono::steady_clock::time_point deadline;
  std::chrono::milliseconds timeout{0};
  bool reset_on_progress = true;
  std::function<void(const json&)> on_progress;
};

// ---- RequestContext ----------------------------------------------------------------------

void RequestContext::progress(double p, std::optional<double> total, const std::string& message) {
  if (!has_progress_token()) return;
  json params = {{"progressToken", meta["progressToken"]}, {"progress", p}};
  if (total) params["total"] = *total;
  if (!message.empty()) params["message"] = message;
  (void)notify("notifications/progress", params);
}

Reply RequestContext::request(const std::string& m, const json& params, RequestOptions opts) {
  opts.related_request_id = id;
  if (!opts.cancel) opts.cancel = &cancelled;
  return session->request(m, params, std::move(opts));
}

Status RequestContext::notify(const std::string& m, const json& params) {
  return session->notify(m, params, id);
}

void RequestContext::close_stream() { session->transport().close_request_stream(id); }

// ---- Session -----------------------------------------------------------------------------

Session::Session(std::shared_ptr<Transport> transport, Options opts)
    : transport_(std::move(transport)), opts_(std::move(opts)) {}

std::shared_ptr<Session> Session::create(std::shared_ptr<Transport> transport, Options opts) {
  return std::shared_ptr<Session>(new Session(std::move(transport), std::move(opts)));
}

Session::~Session() { close(); }

void Session::on_request(const std::string& method, RequestHandler h) {
  std::lock_guard lk(mu_);
  request_handlers_[method] = std::move(h);
}

void Session::on_notification(const std::string& method, NotificationHandler h) {
  std::lock_guard lk(mu_);
  notification_handlers_[method] = std::move(h);
}

void Session::set_gate(Gate g) {
  std::lock_guard lk(mu_);
  gate_ = std::move(g);
}

void Session::set_on_close(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  on_close_ = std::move(fn);
}

Status Session::start() {
  if (started_.exchange(true)) return {};
  std::weak_ptr<Session> weak = shared_from_this();
  return transport_->start(
      [weak](const json& msg) {
        if (auto s = weak.lock()) s->handle_message(msg);
      },
      [weak](const std::string& reason) {
        if (auto s = weak.lock()) s->on_transport_closed(reason);
      });
}

Reply Session::request(const std::string& method, const json& params, RequestOptions opts) {
  Reply fail;
  if (closed_) {
    fail.error = RpcError{err::kConnectionClosed, "Connection closed", nullptr};
    return fail;
  }
  json id = next_id_++;
  auto p = std::make_shared<Pending>();
  p->timeout = opts.timeout.value_or(opts_.request_timeout);
  p->deadline = std::chrono::steady_clock::now() + p->timeout;
  p->reset_on_progress = opts.reset_timeout_on_progress;
  p->on_progress = opts.on_progress;
  json full_params = params.is_null() ? json::object() : params;
  {
    std::lock_guard lk(mu_);
    pending_[id.dump()] = p;
    if (opts.on_progress) {
      full_params["_meta"]["progressToken"] = id;
      progress_routes_[id.dump()] = p;
    }
  }
  auto cleanup = [&] {
    std::lock_guard lk(mu_);
    pending_.erase(id.dump());
    progress_routes_.erase(id.dump());
  };
  Status sent = transport_->send(make_request(id, method, full_params),
                                 SendOptions{opts.related_request_id});
  if (!sent.ok()) {
    cleanup();
    fail.error = RpcError{err::kConnectionClosed, "send failed: " + sent.error().message, nullptr};
    return fail;
  }
  std::unique_lock lk(p->mu);
  for (;;) {
    if (p->done) break;
    auto now = std::chrono::steady_clock::now();
    bool cancelled = opts.cancel && opts.cancel->load();
    if (cancelled || now >= p->deadline) {
      lk.unlock();
      cleanup();
      std::string reason = cancelled ? "cancelled by the caller" : "request timed out";
      (void)notify("notifications/cancelled", {{"requestId", id}, {"reason", reason}},
                   opts.related_request_id);
      if (cancelled)
        fail.error = RpcError{err::kRequestTimeout, "Request cancelled: " + method, nullptr};
      else
        fail.error = RpcError{err::kRequestTimeout,
                              "Request timed out after " + std::to_string(p->timeout.count()) +
                                  " ms: " + method,
                              nullptr};
      return fail;
    }
    p->cv.wait_until(lk, std::min(p->deadline, now + std::chrono::milliseconds(20)));
  }
  Reply r = std::move(p->reply);
  lk.unlock();
  cleanup();
  return r;
}

Status Session::notify(const std::string& method, const json& params, const json& related) {
  if (closed_) return make_error("MCP session is closed");
  return transport_->send(make_notification(method, params), SendOptions{related});
}

void Session::close() {
  if (closed_.exchange(true)) return;
  transport_->close();
  std::vector<std::shared_ptr<Pending>> pend;
  std::vector<std::shared_ptr<RequestContext>> flights;
  std::function<void()> on_close;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, p] : pending_) pend.push_back(p);
    for (auto& [k, c] : in_flight_) flights.push_back(c);
    on_close = on_close_;
  }
  for (auto& p : pend) {
    std::lock_guard lk(p->mu);
    if (!p->done) {
      p->done = true;
      p->reply.error = RpcError{err::kConnectionClosed, "Connection closed", nullptr};
    }
    p->cv.notify_all();
  }
  for (auto& c : flights) c->cancelled = true;
  if (on_close) on_close();
}

void Session::on_transport_closed(const std::string& reason) {
  spdlog::debug("{}: transport closed: {}", opts_.name, reason);
  close();
}

void Session::handle_message(const json& msg) {
  std::string why;
  switch (classify(msg, &why)) {
    case MessageKind::kRequest: handle_request(msg); break;
    case MessageKind::kNotification: handle_notification(msg); break;
    case MessageKind::kResponse: handle_response(msg, false); break;
    case MessageKind::kError: handle_response(msg, true); break;
    case MessageKind::kInvalid: {
      json id = msg.is_object() && msg.contains("id") && is_valid_id(msg["id"]) ? msg["id"] : json();
      (void)transport_->send(
          make_error_response(id, RpcError{err::kInvalidRequest, "Invalid Request: " + why, nullptr}));
      break;
    }
  }
}

void Session::handle_request(const json& msg) {
  const std::string method = msg["method"];
  const json& id = msg["id"];
  json params = msg.contains("params") && msg["params"].is_object() ? msg["params"] : json::object();
  if (method == "ping") {
    (void)transport_->send(make_response(id, json::object()), SendOptions{id});
    return;
  }
  RequestHandler handler;
  Gate gate;
  bool duplicate = false;
  auto ctx = std::make_shared<RequestContext>();
  ctx->id = id;
  ctx->method = method;
  ctx->meta = params.contains("_meta") ? params["_meta"] : json();
  ctx->session = shared_from_this();
  {
    std::lock_guard lk(mu_);
    auto it = request_handlers_.find(method);
    if (it != request_handlers_.end()) handler = it->second;
    gate = gate_;
    if (handler) {
      if (in_flight_.count(id.dump())) {
        duplicate = true;  // same id as a request still running
      } else {
        in_flight_[id.dump()] = ctx;
      }
    }
  }
  if (!handler || duplicate) {
    RpcError e{err::kMethodNotFound, "Method not found: " + method, nullptr};
    if (duplicate) e = RpcError{err::kInvalidRequest, "Duplicate request id " + id.dump(), nullptr};
    (void)transport_->send(make_error_response(id, e), SendOptions{id});
    return;
  }
  if (gate) {
    if (auto refused = gate(method)) {
      finish_request(ctx, nullptr, refused);
      return;
    }
  }
  auto self = shared_from_this();
  run_on_worker([self, ctx, handler, params] {
    json result;
    std::optional<RpcError> error;
    try {
      result = handler(params, *ctx);
    } catch (const RpcError& e) {
      error = e;
    } catch (const std::exception& e) {
      error = RpcError{err::kInternalError, std::string("Internal error: ") + e.what(), nullptr};
    }
    self->finish_request(ctx, result, error);
  });
}

void Session::finish_request(const std::shared_ptr<RequestContext>& ctx, const json& result,
                             const std::optional<RpcError>& error) {
  {
    std::lock_guard lk(mu_);
    in_flight_.erase(ctx->id.dump());
  }
  if (ctx->cancelled && !closed_) return;  // cancelled requests get no response
  json msg = error ? make_error_response(ctx->id, *error) : make_response(ctx->id, result);
  (void)transport_->send(msg, SendOptions{ctx->id});
}

void Session::handle_response(const json& msg, bool is_error) {
  if (!msg.contains("id") || !is_valid_id(msg["id"])) {
    if (is_error)
      spdlog::warn("{}: peer reported an error: {}", opts_.name, msg["error"].dump());
    return;
  }
  std::shared_ptr<Pending> p;
  {
    std::lock_guard lk(mu_);
    auto it = pending_.find(msg["id"].dump());
    if (it == pending_.end()) return;  // late answer to a timed-out/cancelled request
    p = it->second;
  }
  std::lock_guard lk(p->mu);
  if (is_error) p->reply.error = RpcError::from_json(msg["error"]);
  else p->reply.result = msg["result"];
  p->done = true;
  p->cv.notify_all();
}

void Session::handle_notification(const json& msg) {
  const std::string method = msg["method"];
  json params = msg.contains("params") && msg["params"].is_object() ? msg["params"] : json::object();
  if (method == "notifications/cancelled") {
    if (!params.contains("requestId")) return;
    std::lock_guard lk(mu_);
    auto it = in_flight_.find(params["requestId"].dump());
    if (it != in_flight_.end()) it->second->cancelled = true;
    return;
  }
  if (method == "notifications/progress") {
    std::shared_ptr<Pending> p;
    {
      std::lock_guard lk(mu_);
      auto it = progress_routes_.find(params.value("progressToken", json()).dump());
      if (it != progress_routes_.end()) p = it->second;
    }
    if (!p) return;
    std::function<void(const json&)> cb;
    {
      std::lock_guard lk(p->mu);
      if (p->reset_on_progress) p->deadline = std::chrono::steady_clock::now() + p->timeout;
      cb = p->on_progress;
    }
    if (cb) cb(params);
    return;
  }
  NotificationHandler h;
  {
    std::lock_guard lk(mu_);
    auto it = notification_handlers_.find(method);
    if (it != notification_handlers_.end()) h = it->second;
  }
  if (h) h(params);
}

}  // namespace m1::mcp
