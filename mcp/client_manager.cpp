// mcp/client_manager.cpp: config parsing, server connection and the McpTool adapter (see header).
// list_changed arrives on the session's reader thread, so re-listing is handed to a worker.
#include "mcp/client_manager.h"

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "mcp/http_client.h"
#include "mcp/stdio_transport.h"

namespace m1::mcp {

namespace {
Result<std::map<std::string, std::string>> string_map(const json& j, const std::string& what) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) return make_error(what + " must be an object of strings");
  for (auto& [k, v] : j.items()) {
    if (!v.is_string()) return make_error(what + "." + k + " must be a string");
    out[k] = v;
  }
  return out;
}
}  // namespace

Result<std::vector<ServerConfig>> parse_mcp_servers(const json& config) {
  if (!config.is_object() || !config.contains("mcpServers"))
    return make_error("MCP config needs a top-level \"mcpServers\" object");
  const json& servers = config["mcpServers"];
  if (!servers.is_object()) return make_error("\"mcpServers\" must be an object of name -> server");
  std::vector<ServerConfig> out;
  for (auto& [name, s] : servers.items()) {
    std::string where = "mcpServers." + name;
    if (!s.is_object()) return make_error(where + " must be an object");
    if (name.empty() || name.find("__") != std::string::npos)
      return make_error(where + ": server names must be non-empty and contain no \"__\"");
    ServerConfig c;
    c.name = name;
    if (s.contains("command")) {
      if (!s["command"].is_string()) return make_error(where + ".command must be a string");
      c.command = s["command"];
      if (s.contains("args")) {
        if (!s["args"].is_array()) return make_error(where + ".args must be an array of strings");
        for (auto& a : s["args"]) {
          if (!a.is_string()) return make_error(where + ".args must be an array of strings");
          c.args.push_back(a);
        }
      }
      M1_ASSIGN_OR_RETURN(c.env, string_map(s.value("env", json()), where + ".env"));
      if (s.contains("cwd")) {
        if (!s["cwd"].is_string()) return make_error(where + ".cwd must be a string");
        c.cwd = s["cwd"];
      }
    } else if (s.contains("url")) {
      if (!s["url"].is_string()) return make_error(where + ".url must be a string");
      c.url = s["url"];
      M1_ASSIGN_OR_RETURN(c.headers, string_map(s.value("headers", json()), where + ".headers"));
    } else {
      return make_error(where + " needs \"command\" (stdio) or \"url\" (Streamable HTTP)");
    }
    if (s.contains("timeoutMs")) {
      if (!s["timeoutMs"].is_number_integer() || s["timeoutMs"].get<int>() <= 0)
        return make_error(where + ".timeoutMs must be a positive integer");
      c.timeout_ms = s["timeoutMs"];
    }
    c.disabled = s.value("disabled", false);
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<ServerConfig>> load_mcp_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read MCP config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return make_error("MCP config " + path + " is not valid JSON");
  auto r = parse_mcp_servers(j);
  if (!r.ok()) return make_error(path + ": " + r.error().message);
  return r;
}

Result<std::shared_ptr<Client>> connect_server(const ServerConfig& cfg, ClientOptions opts) {
  std::shared_ptr<Transport> transport;
  if (cfg.is_http()) {
    HttpClientOptions ho;
    ho.url = cfg.url;
    ho.headers = cfg.headers;
    auto t = HttpClientTransport::create(ho);
    if (!t.ok()) return make_error("MCP server \"" + cfg.name + "\": " + t.error().message);
    transport = t.value();
  } else {
    ProcessSpec ps{cfg.command, cfg.args, cfg.env, cfg.cwd, false};
    auto t = ProcessTransport::spawn(ps);
    if (!t.ok()) return make_error("MCP server \"" + cfg.name + "\": " + t.error().message);
    transport = t.value();
  }
  auto c = Client::connect(transport, std::move(opts));
  if (!c.ok()) return make_error("MCP server \"" + cfg.name + "\": " + c.error().message);
  return c;
}

// ---- McpTool -----------------------------------------------------------------------------

McpTool::McpTool(std::shared_ptr<Client> client, std::string server, const json& tool, int timeout_ms)
    : client_(std::move(client)), remote_(tool.value("name", "")), timeout_ms_(timeout_ms) {
  spec_.name = server + "__" + remote_;
  spec_.title = tool.value("title", "");
  spec_.description = tool.value("description", "");
  spec_.input_schema = tool.contains("inputSchema") && tool["inputSchema"].is_object()
                           ? tool["inputSchema"]
                           : json{{"type", "object"}};
  if (tool.contains("outputSchema") && tool["outputSchema"].is_object()) spec_.output_schema = tool["outputSchema"];
  if (tool.contains("annotations") && tool["annotations"].is_object()) {
    spec_.annotations = tool["annotations"];
    spec_.read_only = spec_.annotations.value("readOnlyHint", false);
  }
}

tools::ToolResult McpTool::call(const json& args, tools::ToolContext& ctx) {
  CallOptions o;
  o.timeout = std::chrono::milliseconds(timeout_ms_);
  o.cancel = ctx.cancel;
  if (ctx.progress) {
    auto progress = ctx.progress;
    o.on_progress = [progress](const json& p) {
      std::optional<double> total;
      if (p.contains("total") && p["total"].is_number()) total = p["total"].get<double>();
      progress(p.value("progress", 0.0), total, p.value("message", ""));
    };
  }
  auto r = client_->call_tool(remote_, args, o);
  if (!r.ok()) return tools::ToolResult::error_text(spec_.name + ": " + r.error().message);
  tools::ToolResult out;
  const json& res = r.value();
  if (res.contains("content") && res["content"].is_array())
    for (auto& b : res["content"]) out.content.push_back(b);
  if (res.contains("structuredContent")) out.structured = res["structuredContent"];
  out.is_error = res.value("isError", false);
  return out;
}

// ---- ClientManager -----------------------------------------------------------------------

ClientManager::~ClientManager() { close_all(); }

Status ClientManager::add(const ServerConfig& cfg, tools::Registry& registry) {
  if (cfg.disabled) return {};
  ClientOptions opts = base_;
  std::string name = cfg.name;
  tools::Registry* reg = &registry;
  auto user_cb = base_.on_tools_changed;
  opts.on_tools_changed = [this, name, reg, user_cb] {
    run_on_worker([this, name, reg, user_cb] {
      Status st = refresh_tools(name, *reg);
      if (!st.ok()) spdlog::warn("MCP server \"{}\": re-listing tools failed: {}", name, st.error().message);
      if (user_cb) user_cb();
    });
  };
  M1_ASSIGN_OR_RETURN(auto client, connect_server(cfg, opts));
  {
    std::lock_guard lk(mu_);
    servers_[name] = Entry{cfg, client, {}};
  }
  return refresh_tools(name, registry);
}

Status ClientManager::refresh_tools(const std::string& name, tools::Registry& registry) {
  std::shared_ptr<Client> client;
  int timeout_ms;
  {
    std::lock_guard lk(mu_);
    auto it = servers_.find(name);
    if (it == servers_.end()) return make_error("unknown MCP server " + name);
    client = it->second.client;
    timeout_ms = it->second.cfg.timeout_ms;
  }
  auto listed = client->list_tools();
  if (!listed.ok()) return make_error("MCP server \"" + name + "\": tools/list failed: " + listed.error().message);
  std::vector<std::string> names;
  std::lock_guard lk(mu_);
  for (auto& old : servers_[name].tool_names) registry.remove(old);
  for (auto& t : listed.value()) {
    auto tool = std::make_shared<McpTool>(client, name, t, timeout_ms);
    names.push_back(tool->spec().name);
    registry.add(tool);
  }
  servers_[name].tool_names = names;
  return {};
}

std::shared_ptr<Client> ClientManager::client(const std::string& name) {
  std::lock_guard lk(mu_);
  auto it = servers_.find(name);
  return it == servers_.end() ? nullptr : it->second.client;
}

std::vector<std::string> ClientManager::names() {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (auto& [k, v] : servers_) out.push_back(k);
  return out;
}

void ClientManager::close_all() {
  std::map<std::string, Entry> all;
  {
    std::lock_guard lk(mu_);
    all.swap(servers_);
  }
  for (auto& [k, e] : all) e.client->close();
}

}  // namespace m1::mcp
