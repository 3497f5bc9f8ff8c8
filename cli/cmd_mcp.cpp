// cli/cmd_mcp.cpp: `m1 mcp ...` — shell access to configured MCP servers and the client the
// conformance suite drives:
//   m1 mcp list-tools <server> [--config F] [--json]
//   m1 mcp call <server> <tool> '<json args>' [--config F] [--timeout-ms N]
//   m1 mcp conformance-client <server-url>   (scenario from MCP_CONFORMANCE_SCENARIO)
// Ctrl-C during a call sends notifications/cancelled and exits 130.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "mcp/client_manager.h"
#include "mcp/conformance_client.h"

namespace m1::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted = true; }

std::string default_config_path() {
  if (const char* p = std::getenv("M1_MCP_CONFIG")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.config/m1/mcp.json";
}

Result<mcp::ServerConfig> find_server(const std::string& config, const std::string& name) {
  M1_ASSIGN_OR_RETURN(auto servers, mcp::load_mcp_config(config));
  std::string known;
  for (auto& s : servers) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  return make_error("no MCP server named \"" + name + "\" in " + config + " (configured: " +
                    (known.empty() ? "none" : known) + ")", 2);
}

mcp::ClientOptions cli_client_options() {
  mcp::ClientOptions o;
  o.elicitation = mcp::terminal_elicitation;
  o.on_log = [](const nlohmann::json& p) {
    std::fprintf(stderr, "[server %s] %s\n", p.value("level", "info").c_str(),
                 p.contains("data") ? (p["data"].is_string() ? p["data"].get<std::string>().c_str()
                                                             : p["data"].dump().c_str())
                                    : "");
  };
  return o;
}

Status list_tools(const std::string& config, const std::string& name, bool as_json) {
  M1_ASSIGN_OR_RETURN(auto cfg, find_server(config, name));
  M1_ASSIGN_OR_RETURN(auto client, mcp::connect_server(cfg, cli_client_options()));
  auto tools = client->list_tools();
  client->close();
  if (!tools.ok()) return tools.error();
  if (as_json) {
    std::cout << nlohmann::json(tools.value()).dump(2) << "\n";
    return {};
  }
  for (auto& t : tools.value()) {
    std::string desc = t.value("description", "");
    auto nl = desc.find('\n');
    if (nl != std::string::npos) desc = desc.substr(0, nl);
    std::cout << name << "__" << t.value("name", "") << "\t" << desc << "\n";
  }
  return {};
}

Result<int> call_tool(const std::string& config, const std::string& name, const std::string& tool,
                      const std::string& args_text, int timeout_ms) {
  auto args = nlohmann::json::parse(args_text, nullptr, false);
  if (args.is_discarded() || !args.is_object())
    return make_error("tool arguments must be a JSON object, got: " + args_text, 2);
  M1_ASSIGN_OR_RETURN(auto cfg, find_server(config, name));
  M1_ASSIGN_OR_RETURN(auto client, mcp::connect_server(cfg, cli_client_options()));
  std::signal(SIGINT, on_sigint);
  mcp::CallOptions co;
  co.timeout = std::chrono::milliseconds(timeout_ms);
  co.cancel = &g_interrupted;
  co.on_progress = [](const nlohmann::json& p) {
    std::fprintf(stderr, "[progress] %s\n", p.dump().c_str());
  };
  auto r = client->call_tool(tool, args, co);
  client->close();
  if (g_interrupted) {
    std::fprintf(stderr, "m1: interrupted; the call was cancelled\n");
    return 130;
  }
  if (!r.ok()) return r.error();
  std::cout << r.value().dump(2) << "\n";
  return r.value().value("isError", false) ? 1 : 0;
}

}  // namespace

struct McpArgs {
  std::string config = default_config_path();
  std::string server;
  std::string tool;
  std::string args = "{}";
  std::string url;
  bool json = false;
  int timeout_ms = 120000;
};

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto* mcp_cmd = root.add_subcommand("mcp", "Use MCP servers from the mcpServers config");
  mcp_cmd->require_subcommand(1);
  auto a = std::make_shared<McpArgs>();

  auto* lt = mcp_cmd->add_subcommand("list-tools", "List a configured server's tools (as server__tool)");
  lt->add_option("server", a->server, "Server name in mcpServers")->required();
  lt->add_option("--config", a->config, "Config file with mcpServers (default $M1_MCP_CONFIG or ~/.config/m1/mcp.json)");
  lt->add_flag("--json", a->json, "Print the full tool list as JSON");
  lt->callback([a] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("m1-mcp"));
    Status st = list_tools(a->config, a->server, a->json);
    if (!st.ok()) fail(st.error());
  });

  auto* call = mcp_cmd->add_subcommand("call", "Call a tool; prints the CallToolResult JSON (exit 1 if isError)");
  call->add_option("server", a->server, "Server name in mcpServers")->required();
  call->add_option("tool", a->tool, "Tool name (as the server names it)")->required();
  call->add_option("args", a->args, "Arguments as a JSON object (default {})");
  call->add_option("--config", a->config, "Config file with mcpServers");
  call->add_option("--timeout-ms", a->timeout_ms, "Call timeout (default 120000)")->check(CLI::PositiveNumber);
  call->callback([a] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("m1-mcp"));
    auto r = call_tool(a->config, a->server, a->tool, a->args, a->timeout_ms);
    if (!r.ok()) return fail(r.error());
    set_exit_code(r.value());
  });

  auto* cc = mcp_cmd->add_subcommand("conformance-client",
                                     "Client for the MCP conformance suite (scenario from MCP_CONFORMANCE_SCENARIO)");
  cc->add_option("url", a->url, "Server URL (the suite passes it last)")->required();
  cc->callback([a] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("m1-mcp"));
    const char* sc = std::getenv("MCP_CONFORMANCE_SCENARIO");
    const char* ctx = std::getenv("MCP_CONFORMANCE_CONTEXT");
    Status st = mcp::run_conformance_client(a->url, sc ? sc : "", ctx ? ctx : "");
    if (!st.ok()) fail(st.error());
  });
});

}  // namespace m1::cli
