// mcp/http_server.cpp: Streamable HTTP server (see http_server.h).
// Each MCP session has an HttpSessionTransport holding its SSE streams: stream 0 is the
// standalone GET stream, every POSTed request gets its own. Messages are appended to a stream
// as numbered events ("<stream>-<seq>", the SSE id) and kept until the stream's response has
// been written, so a client that lost (or was told to drop) a stream resumes with GET +
// Last-Event-ID. A POST answers plain JSON when the response is the first thing its request
// produces, SSE otherwise — the cheap path stays cheap, streaming stays possible.
#include "mcp/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

namespace m1::mcp {

namespace {

using Clock = std::chrono::steady_clock;

struct Event {
  long seq;
  std::string data;
};

struct Stream {
  long id = 0;
  std::deque<Event> events;
  long next_seq = 1;
  bool finished = false;  // the response is among `events`
  int generation = 0;     // bumped when the server ends the current HTTP connection
  bool attached = false;  // an HTTP connection is writing this stream
  bool force_sse = false;
};

class HttpSessionTransport : public Transport {
 public:
  Status start(MessageFn on_message, CloseFn on_close) override {
    std::lock_guard lk(mu_);
    on_message_ = std::move(on_message);
    on_close_ = std::move(on_close);
    auto s = std::make_shared<Stream>();
    streams_[0] = s;
    return {};
  }

  Status send(const json& msg, const SendOptions& opts) override {
    std::lock_guard lk(mu_);
    if (closed_) return make_error("session closed");
    std::shared_ptr<Stream> target;
    bool is_response = !msg.contains("method") && msg.contains("id") && !msg["id"].is_null();
    const json& key = is_response ? msg["id"] : opts.related_request_id;
    if (!key.is_null()) {
      auto it = by_request_.find(key.dump());
      if (it != by_request_.end()) {
        auto st = streams_.find(it->second);
        if (st != streams_.end() && !st->second->finished) target = st->second;
      }
    }
    if (!target) {
      if (is_response) return {};  // answer to a request whose stream is gone: nowhere to go
      target = streams_[0];
      if (!target->attached) return {};  // no standalone stream open: drop (spec allows)
    }
    target->events.push_back({target->next_seq++, msg.dump(-1, ' ', false, json::error_handler_t::replace)});
    if (is_response) {
      target->finished = true;
      by_request_.erase(key.dump());
    }
    if (target->id == 0 && target->events.size() > 256) target->events.pop_front();
    cv_.notify_all();
    return {};
  }

  void close() override {
    std::lock_guard lk(mu_);
    closed_ = true;
    cv_.notify_all();
  }

  void close_request_stream(const json& request_id) override {
    std::lock_guard lk(mu_);
    auto it = by_request_.find(request_id.dump());
    if (it == by_request_.end()) return;
    auto s = streams_[it->second];
    s->generation++;
    s->force_sse = true;
    cv_.notify_all();
  }

  // A POSTed request: its stream exists before the message reaches the session.
  std::shared_ptr<Stream> open_request_stream(const json& id) {
    std::lock_guard lk(mu_);
    auto s = std::make_shared<Stream>();
    s->id = next_stream_++;
    streams_[s->id] = s;
    by_request_[id.dump()] = s->id;
    prune_locked();
    return s;
  }

  void deliver(const json& msg) {
    MessageFn fn;
    {
      std::lock_guard lk(mu_);
      fn = on_message_;
      last_seen_ = Clock::now();
    }
    if (fn) fn(msg);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<long, std::shared_ptr<Stream>> streams_;
  std::map<std::string, long> by_request_;
  bool closed_ = false;
  Clock::time_point last_seen_ = Clock::now();

 private:
  void prune_locked() {
    // Keep finished, detached streams only for a while (resumption), never unboundedly.
    size_t finished = 0;
    for (auto it = streams_.rbegin(); it != streams_.rend(); ++it)
      if (it->first != 0 && it->second->finished && !it->second->attached) ++finished;
    for (auto it = streams_.begin(); finished > 64 && it != streams_.end();) {
      if (it->first != 0 && it->second->finished && !it->second->attached) {
        it = streams_.erase(it);
        --finished;
      } else {
        ++it;
      }
    }
  }
  MessageFn on_message_;
  CloseFn on_close_;
  long next_stream_ = 1;
};

// cpp-httplib 0.11 listens with a backlog of 5, so a burst of clients overflows the accept
// queue. Its socket is private: find our listening socket by port and listen() again, which
// on Linux only raises the backlog of an already listening socket.
void raise_listen_backlog(int port) {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    int fd = std::atoi(e->d_name);
    if (fd <= 2) continue;
    int acc = 0;
    socklen_t len = sizeof acc;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc) continue;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) continue;
    int p = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
            : ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port) : -1;
    if (p == port) ::listen(fd, SOMAXCONN);
  }
  ::closedir(d);
}

std::string random_session_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[33];
  snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)rng(), (unsigned long long)rng());
  return buf;
}

std::string host_part(std::string hostport) {
  if (!hostport.empty() && hostport[0] == '[') {
    auto e = hostport.find(']');
    return e == std::string::npos ? hostport : hostport.substr(0, e + 1);
  }
  auto c = hostport.find(':');
  return c == std::string::npos ? hostport : hostport.substr(0, c);
}

bool is_loopback_name(const std::string& h) {
  return h == "localhost" || h == "127.0.0.1" || h == "[::1]" || h == "::1";
}

void json_error(httplib::Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(make_error_response(nullptr, RpcError{code, message, nullptr}).dump(), "application/json");
}

std::string sse_event(const std::string& id, const std::string& data) {
  return "event: message\nid: " + id + "\ndata: " + data + "\n\n";
}

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<Server> server;
  HttpServerOptions opts;
  httplib::Server http;
  int port = 0;
  struct Entry {
    std::shared_ptr<HttpSessionTransport> transport;
    std::shared_ptr<ServerConnection> conn;
  };
  std::mutex mu;
  std::map<std::string, Entry> sessions;

  std::string base_url() const {
    std::string h = opts.host == "0.0.0.0" ? "127.0.0.1" : opts.host;
    if (h.find(':') != std::string::npos && h[0] != '[') h = "[" + h + "]";
    return "http://" + h + ":" + std::to_string(port);
  }

  bool check_host_origin(const httplib::Request& req, httplib::Response& res) {
    bool loopback_bind = is_loopback_name(opts.host);
    std::string host = req.get_header_value("Host");
    if (loopback_bind) {
      bool ok = is_loopback_name(host_part(host)) ||
                std::find(opts.allowed_hosts.begin(), opts.allowed_hosts.end(), host) != opts.allowed_hosts.end();
      if (!ok) {
        json_error(res, 403, err::kInvalidRequest, "Forbidden: Host header \"" + host + "\" is not allowed");
        return false;
      }
    }
    if (req.has_header("Origin")) {
      std::string origin = req.get_header_value("Origin");
      std::string rest = origin;
      for (const char* scheme : {"http://", "https://"})
        if (rest.rfind(scheme, 0) == 0) rest = rest.substr(strlen(scheme));
      bool ok = is_loopback_name(host_part(rest)) ||
                std::find(opts.allowed_origins.begin(), opts.allowed_origins.end(), origin) !=
                    opts.allowed_origins.end();
      if (!ok) {
        json_error(res, 403, err::kInvalidRequest, "Forbidden: Origin \"" + origin + "\" is not allowed");
        return false;
      }
    }
    return true;
  }

  bool check_auth(const httplib::Request& req, httplib::Response& res) {
    if (opts.token.empty()) return true;
    std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + opts.token) return true;
    res.set_header("WWW-Authenticate",
                   "Bearer error=\"invalid_token\", error_description=\"" +
                       std::string(auth.empty() ? "Missing bearer token" : "Invalid bearer token") +
                       "\", resource_metadata=\"" + base_url() +
                       "/.well-known/oauth-protected-resource" + opts.path + "\"");
    json_error(res, 401, err::kInvalidRequest, "Unauthorized: a valid bearer token is required");
    return false;
  }

  bool check_protocol_header(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("MCP-Protocol-Version")) return true;  // spec: assume 2025-03-26
    std::string v = req.get_header_value("MCP-Protocol-Version");
    if (is_supported_protocol_version(v)) return true;
    json_error(res, 400, err::kInvalidRequest,
               "Bad Request: unsupported MCP-Protocol-Version \"" + v + "\" (supported: 2025-11-25, "
               "2025-06-18, 2025-03-26)");
    return false;
  }

  // Finds the session named by Mcp-Session-Id: 400 when absent, 404 when unknown or ended.
  std::shared_ptr<HttpSessionTransport> find_session(const httplib::Request& req, httplib::Response& res,
                                                     Entry* out = nullptr) {
    if (!req.has_header("Mcp-Session-Id")) {
      json_error(res, 400, err::kInvalidRequest, "Bad Request: Mcp-Session-Id header is required");
      return nullptr;
    }
    std::string sid = req.get_header_value("Mcp-Session-Id");
    std::lock_guard lk(mu);
    auto it = sessions.find(sid);
    if (it == sessions.end() || it->second.conn->closed()) {
      json_error(res, 404, err::kInvalidRequest, "Session not found: " + sid);
      return nullptr;
    }
    if (out) *out = it->second;
    return it->second.transport;
  }

  void sweep_sessions() {
    auto now = Clock::now();
    std::vector<Entry> dead;
    {
      std::lock_guard lk(mu);
      for (auto it = sessions.begin(); it != sessions.end();) {
        bool idle;
        {
          std::lock_guard tl(it->second.transport->mu_);
          idle = now - it->second.transport->last_seen_ > std::chrono::seconds(opts.session_idle_timeout_s);
        }
        if (idle || it->second.conn->closed()) {
          dead.push_back(it->second);
          it = sessions.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& e : dead) e.conn->close();
  }

  // Writes `stream` to the response as SSE from event seq > `after`, until the response event
  // is written, the server ends this connection (generation change), or the session closes.
  void stream_sse(httplib::Response& res, std::shared_ptr<HttpSessionTransport> t,
                  std::shared_ptr<Stream> s, long after, bool priming, int from_generation = -1) {
    // A POST's stream belongs to generation 0: if the handler already asked to end it
    // (SEP-1699 polling), the client gets the priming event and then the end of the stream.
    int gen;
    {
      std::lock_guard lk(t->mu_);
      gen = from_generation >= 0 ? from_generation : s->generation;
      s->attached = true;
    }
    res.set_header("Cache-Control", "no-cache");
    int retry = opts.sse_retry_ms, keepalive = opts.keepalive_s;
    auto state = std::make_shared<long>(after);
    auto primed = std::make_shared<bool>(!priming);
    res.set_chunked_content_provider(
        "text/event-stream",
        [t, s, gen, state, primed, retry, keepalive](size_t, httplib::DataSink& sink) {
          if (!*primed) {
            *primed = true;
            std::string p = "id: " + std::to_string(s->id) + "-" + std::to_string(*state) +
                            "\nretry: " + std::to_string(retry) + "\ndata: \n\n";
            return sink.write(p.data(), p.size());
          }
          std::unique_lock lk(t->mu_);
          auto ready = [&] {
            if (t->closed_ || s->generation != gen) return true;
            return !s->events.empty() && s->events.back().seq > *state;
          };
          if (!t->cv_.wait_for(lk, std::chrono::seconds(keepalive), ready)) {
            lk.unlock();
            static const std::string ka = ": keepalive\n\n";
            return sink.write(ka.data(), ka.size());
          }
          std::string out;
          bool done = t->closed_ || s->generation != gen;
          for (const auto& e : s->events) {
            if (e.seq <= *state) continue;
            out += sse_event(std::to_string(s->id) + "-" + std::to_string(e.seq), e.data);
            *state = e.seq;
          }
          if (s->finished && !s->events.empty() && *state >= s->events.back().seq) done = true;
          lk.unlock();
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (done) sink.done();
          return true;
        },
        [t, s, gen](bool) {
          std::lock_guard lk(t->mu_);
          if (s->generation == gen) s->attached = false;
        });
  }

  void handle_post(const httplib::Request& req, httplib::Response& res) {
    if (!check_auth(req, res) || !check_protocol_header(req, res)) return;
    std::string accept = req.get_header_value("Accept");
    bool accepts_sse = accept.find("text/event-stream") != std::string::npos || accept.find("*/*") != std::string::npos;
    std::string ctype = req.get_header_value("Content-Type");
    if (!ctype.empty() && ctype.find("application/json") == std::string::npos)
      return json_error(res, 415, err::kInvalidRequest, "Unsupported Media Type: Content-Type must be application/json");
    json msg = json::parse(req.body, nullptr, false);
    if (msg.is_discarded()) return json_error(res, 400, err::kParseError, "Parse error: invalid JSON");
    std::string why;
    MessageKind kind = classify(msg, &why);
    if (kind == MessageKind::kInvalid) return json_error(res, 400, err::kInvalidRequest, "Invalid Request: " + why);

    std::shared_ptr<HttpSessionTransport> t;
    std::string sid;
    if (kind == MessageKind::kRequest && msg["method"] == "initialize") {
      if (req.has_header("Mcp-Session-Id"))
        return json_error(res, 400, err::kInvalidRequest, "Bad Request: initialize must not carry an Mcp-Session-Id");
      sweep_sessions();
      t = std::make_shared<HttpSessionTransport>();
      auto conn = server->connect(t);
      sid = random_session_id();
      std::lock_guard lk(mu);
      if (sessions.size() >= opts.max_sessions)
        return json_error(res, 503, err::kInternalError, "Too many sessions");
      sessions[sid] = Entry{t, conn};
    } else {
      t = find_session(req, res);
      if (!t) return;
      sid = req.get_header_value("Mcp-Session-Id");
    }
    res.set_header("Mcp-Session-Id", sid);
    if (kind != MessageKind::kRequest) {
      t->deliver(msg);
      res.status = 202;
      return;
    }
    auto s = t->open_request_stream(msg["id"]);
    t->deliver(msg);
    std::unique_lock lk(t->mu_);
    t->cv_.wait(lk, [&] { return t->closed_ || !s->events.empty() || s->generation > 0; });
    if (t->closed_ && s->events.empty())
      return json_error(res, 404, err::kInvalidRequest, "Session ended: " + sid);
    bool json_reply = !s->force_sse && s->finished && s->events.size() == 1;
    if (json_reply || !accepts_sse) {
      t->cv_.wait(lk, [&] { return t->closed_ || s->finished; });
      if (!s->finished) return json_error(res, 404, err::kInvalidRequest, "Session ended: " + sid);
      res.status = 200;
      res.set_content(s->events.back().data, "application/json");
      return;
    }
    lk.unlock();
    stream_sse(res, t, s, 0, /*priming=*/true, /*from_generation=*/0);
  }

  void handle_get(const httplib::Request& req, httplib::Response& res) {
    if (!check_auth(req, res) || !check_protocol_header(req, res)) return;
    std::string accept = req.get_header_value("Accept");
    if (accept.find("text/event-stream") == std::string::npos)
      return json_error(res, 406, err::kInvalidRequest, "Not Acceptable: GET needs Accept: text/event-stream");
    auto t = find_session(req, res);
    if (!t) return;
    res.set_header("Mcp-Session-Id", req.get_header_value("Mcp-Session-Id"));
    std::string last = req.get_header_value("Last-Event-ID");
    std::unique_lock lk(t->mu_);
    if (!last.empty()) {
      auto dash = last.find('-');
      long sid_num = -1, seq = -1;
      try {
        if (dash != std::string::npos) {
          sid_num = std::stol(last.substr(0, dash));
          seq = std::stol(last.substr(dash + 1));
        }
      } catch (...) {
      }
      auto it = streams_find(t, sid_num);
      if (!it) return json_error(res, 404, err::kInvalidRequest, "Unknown Last-Event-ID: " + last);
      if (it->attached && it->id != 0) {
        it->generation++;  // a new connection takes the stream over from a stale one
        t->cv_.notify_all();
      }
      lk.unlock();
      return stream_sse(res, t, it, seq, /*priming=*/false);
    }
    auto s = t->streams_[0];
    if (s->attached)
      return json_error(res, 409, err::kInvalidRequest, "Conflict: a standalone SSE stream is already open for this session");
    long after = s->events.empty() ? 0 : s->events.back().seq;
    lk.unlock();
    stream_sse(res, t, s, after, /*priming=*/true);
  }

  static std::shared_ptr<Stream> streams_find(const std::shared_ptr<HttpSessionTransport>& t, long id) {
    auto it = t->streams_.find(id);
    return it == t->streams_.end() ? nullptr : it->second;
  }

  void handle_delete(const httplib::Request& req, httplib::Response& res) {
    if (!check_auth(req, res) || !check_protocol_header(req, res)) return;
    Entry e;
    if (!find_session(req, res, &e)) return;
    {
      std::lock_guard lk(mu);
      sessions.erase(req.get_header_value("Mcp-Session-Id"));
    }
    e.conn->close();
    res.status = 200;
  }

  void install_routes() {
    http.new_task_queue = [n = opts.threads] { return new httplib::ThreadPool(n); };
    http.set_keep_alive_max_count(100000);
    http.set_tcp_nodelay(true);  // SSE events and small JSON answers must not wait for Nagle
    http.set_payload_max_length(opts.max_body_bytes);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return check_host_origin(req, res) ? httplib::Server::HandlerResponse::Unhandled
                                         : httplib::Server::HandlerResponse::Handled;
    });
    http.Post(opts.path, [this](const httplib::Request& req, httplib::Response& res) { handle_post(req, res); });
    http.Get(opts.path, [this](const httplib::Request& req, httplib::Response& res) { handle_get(req, res); });
    http.Delete(opts.path, [this](const httplib::Request& req, httplib::Response& res) { handle_delete(req, res); });
    auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "GET, POST, DELETE");
      json_error(res, 405, err::kInvalidRequest, "Method Not Allowed");
    };
    http.Put(opts.path, not_allowed);
    http.Patch(opts.path, not_allowed);
    auto prm = [this](const httplib::Request&, httplib::Response& res) {
      json doc = {{"resource", base_url() + opts.path},
                  {"bearer_methods_supported", {"header"}},
                  {"resource_name", server->options().info.name}};
      if (!opts.authorization_servers.empty()) doc["authorization_servers"] = opts.authorization_servers;
      res.set_content(doc.dump(), "application/json");
    };
    http.Get("/.well-known/oauth-protected-resource", prm);
    http.Get("/.well-known/oauth-protected-resource" + opts.path, prm);
  }
};

HttpServer::HttpServer(std::shared_ptr<Server> server, HttpServerOptions opts) : impl_(new Impl) {
  impl_->server = std::move(server);
  impl_->opts = std::move(opts);
  impl_->install_routes();
}

HttpServer::~HttpServer() {
  stop();
  std::map<std::string, Impl::Entry> s;
  {
    std::lock_guard lk(impl_->mu);
    s.swap(impl_->sessions);
  }
  for (auto& [k, e] : s) e.conn->close();
}

Status HttpServer::bind() {
  auto& o = impl_->opts;
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host);
    if (impl_->port <= 0) return make_error("cannot bind " + o.host + ":0 (is the address valid here?)");
  } else {
    if (!impl_->http.bind_to_port(o.host, o.port))
      return make_error("cannot bind " + o.host + ":" + std::to_string(o.port) + " (in use, or not a local address)");
    impl_->port = o.port;
  }
  raise_listen_backlog(impl_->port);
  return {};
}

int HttpServer::port() const { return impl_->port; }

Status HttpServer::run() {
  if (!impl_->http.listen_after_bind()) return make_error("HTTP server stopped with an error");
  return {};
}

void HttpServer::stop() {
  {
    std::lock_guard lk(impl_->mu);
    for (auto& [k, e] : impl_->sessions) e.transport->close();  // ends open SSE streams
  }
  impl_->http.stop();
}

}  // namespace m1::mcp
