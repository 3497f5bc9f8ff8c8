// mcp/client.h: the MCP client facade over a Session: initialize (version negotiation),
// paginated listing, tool calls with timeouts/progress/cancellation, and the client-side
// features a server may ask for: roots/list, sampling/createMessage (a pluggable callback; the
// agent plugs its model provider in) and elicitation/create (a callback; see
// terminal_elicitation() for the interactive default).
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "mcp/session.h"
#include "mcp/types.h"

namespace m1::mcp {

struct ClientOptions {
  Implementation info{"m1", "0.1.0", "m1 MCP client"};
  std::chrono::milliseconds request_timeout{60000};
  std::vector<json> roots;  // Root objects {"uri": "file:///...", "name": ...}
  // sampling/createMessage params -> CreateMessageResult, or an error message (sent as RpcError).
  // Unset: the sampling capability is not declared and such requests get a clear error.
  std::function<Result<json>(const json& params)> sampling;
  // elicitation/create params -> ElicitResult ({"action": "accept"|"decline"|"cancel", ...}).
  // Unset: declared anyway and every request is declined.
  std::function<json(const json& params)> elicitation;
  std::function<void(const json& params)> on_log;           // notifications/message
  std::function<void()> on_tools_changed;                    // notifications/tools/list_changed
  std::function<void(const std::string& uri)> on_resource_updated;
};

struct CallOptions {
  std::optional<std::chrono::milliseconds> timeout;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(const json& progress)> on_progress;
};

class Client {
 public:
  // Starts the transport and runs the initialize handshake. The error says what failed.
  static Result<std::shared_ptr<Client>> connect(std::shared_ptr<Transport> transport, ClientOptions opts);
  ~Client();

  const json& server_info() const { return server_info_; }
  const json& server_capabilities() const { return server_caps_; }
  const std::string& protocol_version() const { return protocol_version_; }
  const std::string& instructions() const { return instructions_; }

  Result<std::vector<json>> list_tools();
  Result<std::vector<json>> list_resources();
  Result<std::vector<json>> list_resource_templates();
  Result<std::vector<json>> list_prompts();
  // CallToolResult (isError results are values, not errors; protocol errors are errors).
  Result<json> call_tool(const std::string& name, const json& args, const CallOptions& opts = {});
  Result<json> read_resource(const std::string& uri);
  Result<json> get_prompt(const std::string& name, const json& args);
  Result<json> complete(const json& ref, const json& argument);
  Status ping();
  Status set_log_level(const std::string& level);
  Status subscribe(const std::string& uri);
  Status notify_roots_changed(std::vector<json> roots);
  // Any request; the Reply keeps the RpcError (code + message).
  Reply request(const std::string& method, const json& params, RequestOptions opts = {});
  void close();
  Session& session() { return *session_; }

 private:
  Client() = default;
  Result<std::vector<json>> list_all(const std::string& method, const std::string& key);
  Status initialize();
  std::shared_ptr<Session> session_;
  ClientOptions opts_;
  std::mutex roots_mu_;
  json server_info_, server_caps_;
  std::string protocol_version_, instructions_;
};

// Fills a form from the requested schema's defaults (used by the conformance client and
// as the non-interactive "accept with defaults" policy).
json defaults_from_schema(const json& requested_schema);
// Interactive elicitation on the terminal (stdin/stderr); declines when stdin is not a TTY.
json terminal_elicitation(const json& params);

}  // namespace m1::mcp
