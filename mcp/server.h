// mcp/server.h: the MCP server facade. It puts a tools::Registry (the same one the agent uses)
// plus optional resource and prompt providers behind the MCP methods, one ServerConnection per
// client (a stdio pipe or one Streamable HTTP session). "Native" tools are for tools that need
// the MCP session itself (logging, progress, sampling, elicitation, stream control): the
// conformance fixtures and the agent's run_task use them; plain tools stay tools::Tool.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mcp/session.h"
#include "mcp/types.h"
#include "tools/tool.h"

namespace m1::mcp {

class ServerConnection;

struct ServerOptions {
  Implementation info{"m1", "0.1.0", "m1 MCP server"};
  std::string instructions;
  size_t page_size = 100;                    // tools/resources/prompts per list page
  std::filesystem::path workspace;           // ToolContext.workspace for registry tools
  nlohmann::json tool_settings = nlohmann::json::object();
  std::chrono::milliseconds request_timeout{300000};  // server->client requests (sampling...)
};

// What a native tool gets: the request (progress, cancel, talk back) and its connection.
struct ToolCall {
  RequestContext& rpc;
  ServerConnection& conn;
};

struct NativeTool {
  tools::ToolSpec spec;
  // Returns a CallToolResult object; throws RpcError for protocol errors.
  std::function<json(const json& args, ToolCall& call)> fn;
};

class ResourceProvider {
 public:
  virtual ~ResourceProvider() = default;
  virtual std::vector<json> resources() = 0;                  // Resource objects
  virtual std::vector<json> templates() { return {}; }        // ResourceTemplate objects
  virtual std::optional<json> read(const std::string& uri) = 0;  // nullopt: not ours
  virtual std::optional<json> complete(const json& /*ref*/, const json& /*arg*/) { return std::nullopt; }
};

class PromptProvider {
 public:
  virtual ~PromptProvider() = default;
  virtual std::vector<json> prompts() = 0;  // Prompt objects
  // nullopt: not ours; throws RpcError(kInvalidParams) for missing/bad arguments.
  virtual std::optional<json> get(const std::string& name, const json& args) = 0;
  virtual std::optional<json> complete(const json& /*ref*/, const json& /*arg*/) { return std::nullopt; }
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(ServerOptions opts, std::shared_ptr<tools::Registry> registry);
  void add_native_tool(NativeTool tool);
  void add_resource_provider(std::shared_ptr<ResourceProvider> p);
  void add_prompt_provider(std::shared_ptr<PromptProvider> p);

  // Serves one client over `transport` (starts reading). Kept alive until the peer goes away
  // or close() is called on it.
  std::shared_ptr<ServerConnection> connect(std::shared_ptr<Transport> transport);

  // Sends notifications/resources/updated to connections subscribed to `uri`.
  void notify_resource_updated(const std::string& uri);
  void notify_tools_changed();
  const ServerOptions& options() const { return opts_; }

 private:
  friend class ServerConnection;
  std::vector<json> tool_list() const;
  json call_tool(const std::string& name, const json& args, ToolCall& call);
  std::vector<std::weak_ptr<ServerConnection>> live_connections();

  ServerOptions opts_;
  std::shared_ptr<tools::Registry> registry_;
  mutable std::mutex mu_;
  std::vector<NativeTool> native_;
  std::vector<std::shared_ptr<ResourceProvider>> resources_;
  std::vector<std::shared_ptr<PromptProvider>> prompts_;
  std::vector<std::weak_ptr<ServerConnection>> connections_;
};

// Log levels (RFC 5424 names, as MCP uses them), lowest first.
int log_level_rank(const std::string& level);  // -1 if unknown

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(std::shared_ptr<Server> server, std::shared_ptr<Transport> transport);
  void close();
  bool closed() const { return session_->closed(); }
  Session& session() { return *session_; }

  // notifications/message if `level` passes the client's logging/setLevel threshold.
  void log(const std::string& level, const json& data, const json& related_request_id = nullptr,
           const std::string& logger = "");
  bool client_has(const std::string& capability) const;
  std::string protocol_version() const;
  bool initialized() const;
  bool subscribed(const std::string& uri) const;

 private:
  void install_handlers();
  json handle_initialize(const json& params);

  std::shared_ptr<Server> server_;
  std::shared_ptr<Session> session_;
  mutable std::mutex mu_;
  bool init_requested_ = false;
  bool initialized_ = false;
  std::string protocol_version_;
  json client_capabilities_ = json::object();
  json client_info_;
  int log_threshold_ = 0;  // debug: everything until the client sets a level
  std::set<std::string> subscriptions_;
};

}  // namespace m1::mcp
