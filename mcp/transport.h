// mcp/transport.h: what moves JSON-RPC messages. A Transport only carries messages; ids,
// timeouts and dispatch live in Session. `related_request_id` lets a streaming transport
// (Streamable HTTP) put a notification or server->client request on the SSE stream of the
// request that caused it; stdio ignores it.
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace m1::mcp {

struct SendOptions {
  nlohmann::json related_request_id;  // null: not tied to an incoming request
};

class Transport {
 public:
  using MessageFn = std::function<void(const nlohmann::json& msg)>;
  using CloseFn = std::function<void(const std::string& reason)>;
  virtual ~Transport() = default;
  // Begins delivering incoming messages (from a reader thread) to on_message.
  virtual Status start(MessageFn on_message, CloseFn on_close) = 0;
  virtual Status send(const nlohmann::json& msg, const SendOptions& opts = {}) = 0;
  virtual void close() = 0;
  // Streamable HTTP server: ends the SSE stream of `request_id` now so the client reconnects
  // with Last-Event-ID (SEP-1699 polling). Other transports: no-op.
  virtual void close_request_stream(const nlohmann::json& /*request_id*/) {}
  // Client transports: the negotiated protocol version (HTTP sends it as a header).
  virtual void set_protocol_version(const std::string& /*v*/) {}
};

}  // namespace m1::mcp
