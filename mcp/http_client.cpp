// mcp/http_client.cpp: Streamable HTTP client transport (see http_client.h).
// A failed POST for a request is turned into a JSON-RPC error for that id, so the waiting
// Session::request returns promptly with the HTTP reason instead of timing out.
#include "mcp/http_client.h"

#include <httplib.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "mcp/types.h"

namespace m1::mcp {

thread_local bool HttpClientTransport::in_worker_ = false;

namespace {

// Incremental text/event-stream parser (WHATWG rules: data lines joined with \n).
struct SseParser {
  std::string buf, data, id, event;
  bool has_data = false;
  std::function<void(const std::string& id, const std::string& data)> on_event;
  std::function<void(int)> on_retry;
  std::function<void(const std::string&)> on_id;
  void feed(const char* p, size_t n) {
    buf.append(p, n);
    size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, pos);
      buf.erase(0, pos + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      handle(line);
    }
  }
  void handle(const std::string& line) {
    if (line.empty()) {
      if (has_data || !id.empty()) on_event(id, data);
      data.clear();
      id.clear();
      event.clear();
      has_data = false;
      return;
    }
    if (line[0] == ':') return;
    auto c = line.find(':');
    std::string field = line.substr(0, c), value = c == std::string::npos ? "" : line.substr(c + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (field == "data") {
      if (has_data) data += "\n";
      data += value;
      has_data = true;
    } else if (field == "id") {
      id = value;
      if (on_id) on_id(value);
    } else if (field == "event") {
      event = value;
    } else if (field == "retry") {
      bool digits = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
      if (digits && on_retry) on_retry(std::stoi(value));
    }
  }
};

json error_for(const json& id, const std::string& message) {
  return make_error_response(id, RpcError{err::kConnectionClosed, message, nullptr});
}

}  // namespace

Result<std::shared_ptr<HttpClientTransport>> HttpClientTransport::create(HttpClientOptions opts) {
  const std::string url = opts.url;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return make_error("MCP server url must start with http:// or https://: \"" + url + "\"");
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    return make_error("MCP server url must be http or https: \"" + url + "\"");
  auto path_start = url.find('/', scheme_end + 3);
  auto t = std::shared_ptr<HttpClientTransport>(new HttpClientTransport(std::move(opts)));
  t->base_ = path_start == std::string::npos ? url : url.substr(0, path_start);
  t->path_ = path_start == std::string::npos ? "/" : url.substr(path_start);
  if (t->base_.size() <= scheme_end + 3) return make_error("MCP server url has no host: \"" + url + "\"");
  return t;
}

HttpClientTransport::~HttpClientTransport() { close(); }

Status HttpClientTransport::start(MessageFn on_message, CloseFn on_close) {
  on_message_ = std::move(on_message);
  on_close_ = std::move(on_close);
  return {};
}

void HttpClientTransport::set_protocol_version(const std::string& v) {
  std::lock_guard lk(mu_);
  protocol_version_ = v;
}

std::string HttpClientTransport::session_id() const {
  std::lock_guard lk(mu_);
  return session_id_;
}

std::unique_ptr<httplib::Client> HttpClientTransport::make_client() {
  auto c = std::make_unique<httplib::Client>(base_);
  c->set_connection_timeout(opts_.connect_timeout_s, 0);
  c->set_read_timeout(opts_.read_timeout_s, 0);
  c->set_write_timeout(30, 0);
  c->set_keep_alive(false);
  c->set_tcp_nodelay(true);
  return c;
}

std::map<std::string, std::string> HttpClientTransport::common_headers() {
  std::map<std::string, std::string> h = opts_.headers;
  std::lock_guard lk(mu_);
  if (!session_id_.empty()) h["Mcp-Session-Id"] = session_id_;
  if (!protocol_version_.empty()) h["MCP-Protocol-Version"] = protocol_version_;
  return h;
}

void HttpClientTransport::deliver(const json& msg) {
  if (on_message_ && !closed_) on_message_(msg);
}

void HttpClientTransport::track(httplib::Client* c, bool add) {
  std::lock_guard lk(mu_);
  if (add) active_.insert(c);
  else active_.erase(c);
}

Status HttpClientTransport::send(const json& msg, const SendOptions&) {
  if (closed_) return make_error("transport closed");
  bool is_request = msg.contains("method") && msg.contains("id");
  if (!is_request) {
    Status st = post(msg, false);
    if (st.ok() && msg.value("method", "") == "notifications/initialized" && opts_.open_standalone_stream &&
        !standalone_started_.exchange(true)) {
      spawn([](HttpClientTransport& t) { t.standalone_loop(); });
    }
    return st;
  }
  spawn([msg](HttpClientTransport& t) { (void)t.post(msg, true); });
  return {};
}

Status HttpClientTransport::post(const json& msg, bool is_request) {
  std::string body = msg.dump();
  json id = is_request ? msg["id"] : json();
  auto cli = make_client();
  track(cli.get(), true);
  struct Untrack {
    HttpClientTransport* t;
    httplib::Client* c;
    ~Untrack() { t->track(c, false); }
  } untrack{this, cli.get()};
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto headers = common_headers();
    if (opts_.auth) {
      std::string a = opts_.auth->authorization_header();
      if (!a.empty()) headers["Authorization"] = a;
    }
    httplib::Headers hh;
    for (auto& [k, v] : headers) hh.emplace(k, v);
    hh.emplace("Accept", "application/json, text/event-stream");
    int status = 0;
    std::string content_type, www_auth, body_text;
    bool got_response = false;
    std::string last_id;
    int retry_ms = 1000;
    SseParser parser;
    parser.on_id = [&](const std::string& v) { last_id = v; };
    parser.on_retry = [&](int ms) { retry_ms = ms; };
    parser.on_event = [&](const std::string&, const std::string& data) {
      if (data.empty()) return;
      json m = json::parse(data, nullptr, false);
      if (m.is_discarded()) return;
      if (is_request && !m.contains("method") && m.value("id", json()) == id) got_response = true;
      deliver(m);
    };
    httplib::Request req;
    req.method = "POST";
    req.path = path_;
    req.headers = hh;
    req.body = body;
    req.set_header("Content-Type", "application/json");
    req.response_handler = [&](const httplib::Response& r) {
      status = r.status;
      content_type = r.get_header_value("Content-Type");
      www_auth = r.get_header_value("WWW-Authenticate");
      if (r.has_header("Mcp-Session-Id")) {
        std::lock_guard lk(mu_);
        session_id_ = r.get_header_value("Mcp-Session-Id");
      }
      return true;
    };
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      if (content_type.find("text/event-stream") != std::string::npos && status / 100 == 2) parser.feed(d, n);
      else body_text.append(d, n);
      return !closed_.load();
    };
    auto res = cli->send(req);
    if (closed_) return make_error("transport closed");
    if (!res && status == 0) {
      std::string why = "HTTP request to " + opts_.url + " failed: " + httplib::to_string(res.error());
      if (is_request) deliver(error_for(id, why));
      return make_error(why);
    }
    if ((status == 401 || status == 403) && opts_.auth && opts_.auth->on_unauthorized(status, www_auth)) continue;
    if (status / 100 != 2) {
      std::string why = "HTTP " + std::to_string(status) + " from " + opts_.url;
      json err_body = json::parse(body_text, nullptr, false);
      if (err_body.is_object() && err_body.contains("error") && err_body["error"].is_object())
        why += ": " + err_body["error"].value("message", "");
      else if (!body_text.empty())
        why += ": " + body_text.substr(0, 200);
      if (is_request) deliver(error_for(id, why));
      return make_error(why);
    }
    if (status == 202 || !is_request) return {};
    if (content_type.find("text/event-stream") == std::string::npos) {
      json m = json::parse(body_text, nullptr, false);
      if (m.is_discarded() || !m.is_object()) {
        deliver(error_for(id, "invalid JSON in the HTTP response from " + opts_.url));
        return make_error("invalid JSON response");
      }
      deliver(m);
      return {};
    }
    if (got_response) return {};
    // The stream ended before our response: resume it (SEP-1699) after the retry delay.
    for (int resume = 0; resume < opts_.max_resume_attempts && !got_response && !closed_; ++resume) {
      if (last_id.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(retry_ms));
      if (closed_) break;
      httplib::Headers gh;
      for (auto& [k, v] : common_headers()) gh.emplace(k, v);
      if (opts_.auth) {
        std::string a = opts_.auth->authorization_header();
        if (!a.empty()) gh.emplace("Authorization", a);
      }
      gh.emplace("Accept", "text/event-stream");
      gh.emplace("Last-Event-ID", last_id);
      int gstatus = 0;
      auto gres = cli->Get(
          path_, gh,
          [&](const httplib::Response& r) {
            gstatus = r.status;
            return r.status / 100 == 2;
          },
          [&](const char* d, size_t n) {
            parser.feed(d, n);
            return !closed_.load() && !got_response;
          });
      if (gstatus / 100 != 2 && gstatus != 0) break;
    }
    if (!got_response && !closed_)
      deliver(error_for(id, "SSE stream from " + opts_.url + " ended before the response arrived"));
    return {};
  }
  if (is_request) deliver(error_for(id, "authorization failed for " + opts_.url));
  return make_error("authorization failed for " + opts_.url);
}

void HttpClientTransport::standalone_loop() {
  auto cli = make_client();
  track(cli.get(), true);
  std::string last_id;
  int retry_ms = 1000;
  for (int failures = 0; !closed_ && failures < 5;) {
    httplib::Headers gh;
    for (auto& [k, v] : common_headers()) gh.emplace(k, v);
    if (opts_.auth) {
      std::string a = opts_.auth->authorization_header();
      if (!a.empty()) gh.emplace("Authorization", a);
    }
    gh.emplace("Accept", "text/event-stream");
    if (!last_id.empty()) gh.emplace("Last-Event-ID", last_id);
    SseParser parser;
    parser.on_id = [&](const std::string& v) { last_id = v; };
    parser.on_retry = [&](int ms) { retry_ms = ms; };
    parser.on_event = [&](const std::string&, const std::string& data) {
      if (data.empty()) return;
      json m = json::parse(data, nullptr, false);
      if (!m.is_discarded()) deliver(m);
    };
    int status = 0;
    auto res = cli->Get(
        path_, gh,
        [&](const httplib::Response& r) {
          status = r.status;
          return r.status / 100 == 2;
        },
        [&](const char* d, size_t n) {
          parser.feed(d, n);
          return !closed_.load();
        });
    if (closed_) break;
    if (status == 405 || status == 404 || status == 400 || status == 401 || status == 403) break;
    if (status / 100 == 2) failures = 0;
    else ++failures;
    for (int waited = 0; waited < retry_ms && !closed_; waited += 50)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  track(cli.get(), false);
}

void HttpClientTransport::close() {
  if (closed_.exchange(true)) return;
  std::string sid;
  {
    std::lock_guard lk(mu_);
    for (auto* c : active_) c->stop();
    sid = session_id_;
  }
  if (!sid.empty()) {  // end the session on the server (best effort)
    auto cli = make_client();
    cli->set_read_timeout(2, 0);
    httplib::Headers h;
    for (auto& [k, v] : common_headers()) h.emplace(k, v);
    if (opts_.auth) {
      std::string a = opts_.auth->authorization_header();
      if (!a.empty()) h.emplace("Authorization", a);
    }
    cli->Delete(path_, h);
  }
  for (int i = 0; i < 100; ++i) {  // stop() races with a connect in progress: repeat briefly
    {
      std::lock_guard lk(mu_);
      if (active_.empty()) break;
      for (auto* c : active_) c->stop();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Workers hold a reference to this transport, so waiting is only for tidiness (bounded).
  std::unique_lock lk(mu_);
  threads_cv_.wait_for(lk, std::chrono::seconds(3), [&] { return running_ <= (in_worker_ ? 1 : 0); });
}

void HttpClientTransport::spawn(std::function<void(HttpClientTransport&)> fn) {
  auto self = shared_from_this();
  {
    std::lock_guard lk(mu_);
    ++running_;
  }
  std::thread([self, fn] {
    in_worker_ = true;
    fn(*self);
    std::lock_guard lk(self->mu_);
    --self->running_;
    self->threads_cv_.notify_all();
  }).detach();
}

}  // namespace m1::mcp
