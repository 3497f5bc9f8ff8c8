// mcp/client_manager.h: MCP servers from a Claude Desktop / Cursor style config, connected
// and exposed as tools. Config: {"mcpServers": {"<name>": {"command": ..., "args": [...],
// "env": {...}, "cwd": ...} | {"url": "http://...", "headers": {...}}, ...}}; optional per
// server "timeoutMs" (tool call timeout) and "disabled": true. Each server's tools join a
// tools::Registry as `<server>__<tool>` (McpTool adapters); list_changed re-lists them.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mcp/client.h"
#include "tools/tool.h"

namespace m1::mcp {

struct ServerConfig {
  std::string name;
  // stdio
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string cwd;
  // Streamable HTTP
  std::string url;
  std::map<std::string, std::string> headers;
  int timeout_ms = 120000;
  bool disabled = false;
  bool is_http() const { return !url.empty(); }
};

// Parses the "mcpServers" object of a config document; errors name the server and field.
Result<std::vector<ServerConfig>> parse_mcp_servers(const nlohmann::json& config);
Result<std::vector<ServerConfig>> load_mcp_config(const std::string& path);

// Opens a transport for `cfg` and initializes a Client over it.
Result<std::shared_ptr<Client>> connect_server(const ServerConfig& cfg, ClientOptions opts);

// A tool of a connected MCP server, as a tools::Tool named `<server>__<tool>`.
class McpTool : public tools::Tool {
 public:
  McpTool(std::shared_ptr<Client> client, std::string server, const nlohmann::json& tool, int timeout_ms);
  const tools::ToolSpec& spec() const override { return spec_; }
  tools::ToolResult call(const nlohmann::json& args, tools::ToolContext& ctx) override;
  const std::string& remote_name() const { return remote_; }

 private:
  std::shared_ptr<Client> client_;
  std::string remote_;
  tools::ToolSpec spec_;
  int timeout_ms_;
};

class ClientManager {
 public:
  explicit ClientManager(ClientOptions base) : base_(std::move(base)) {}
  ~ClientManager();
  // Connects one server and registers its tools; the error names the server.
  Status add(const ServerConfig& cfg, tools::Registry& registry);
  std::shared_ptr<Client> client(const std::string& name);
  std::vector<std::string> names();
  void close_all();

 private:
  Status refresh_tools(const std::string& name, tools::Registry& registry);
  ClientOptions base_;
  std::mutex mu_;
  struct Entry {
    ServerConfig cfg;
    std::shared_ptr<Client> client;
    std::vector<std::string> tool_names;
  };
  std::map<std::string, Entry> servers_;
};

}  // namespace m1::mcp
