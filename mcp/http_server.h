// mcp/http_server.h: the Streamable HTTP server transport (MCP 2025-11-25) on cpp-httplib.
// One endpoint (default /mcp): POST carries client messages (answered with JSON, or with an
// SSE stream once the request's handler sends anything before its response), GET opens the
// standalone SSE stream or resumes one with Last-Event-ID, DELETE ends the session.
// Guards: Host/Origin checks against DNS rebinding (403), bearer token (401 + WWW-Authenticate
// pointing at the RFC 9728 metadata document), body limit (413), MCP-Protocol-Version (400),
// unknown session (404). Binds 127.0.0.1 unless told otherwise.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "mcp/server.h"

namespace m1::mcp {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                       // 0: pick a free port (see HttpServer::port())
  std::string path = "/mcp";
  std::string token;                  // non-empty: require "Authorization: Bearer <token>"
  std::vector<std::string> authorization_servers;  // for the RFC 9728 document
  std::vector<std::string> allowed_hosts;    // extra Host values accepted (besides loopback)
  std::vector<std::string> allowed_origins;  // extra Origin values accepted (besides loopback)
  size_t max_body_bytes = 4 << 20;
  int threads = 128;                  // each open SSE stream holds one
  int sse_retry_ms = 1000;            // "retry:" sent with each stream's priming event
  int keepalive_s = 15;               // SSE comment lines so dead peers are noticed
  int session_idle_timeout_s = 3600;  // sessions without any request for this long are ended
  size_t max_sessions = 10000;
};

class HttpServer {
 public:
  HttpServer(std::shared_ptr<Server> server, HttpServerOptions opts);
  ~HttpServer();
  // Binds the listening socket; the error names host:port and the reason.
  Status bind();
  int port() const;
  // Serves until stop() (blocks).
  Status run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace m1::mcp
