// cli/cmd_serve.cpp: `m1 serve` — the MCP server over stdio (default) or Streamable HTTP.
// It exposes the built-in tools (confined to --workspace) and, with --conformance, exactly
// the conformance suite's fixture set. Logs go to stderr only: stdout is the protocol on stdio.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "mcp/conformance_fixtures.h"
#include "mcp/http_server.h"
#include "mcp/server.h"
#include "mcp/stdio_transport.h"
#ifdef M1_HAVE_TOOLS_LIB
#include "tools/builtin.h"
#endif

namespace m1::cli {
namespace {

struct ServeArgs {
  bool stdio = false;
  std::string http;
  std::string token;
  std::string workspace = ".";
  bool conformance = false;
  bool no_builtin = false;
  std::string port_file;
  std::vector<std::string> auth_servers, allowed_hosts, allowed_origins;
};

Result<std::pair<std::string, int>> parse_host_port(const std::string& s) {
  auto c = s.rfind(':');
  if (c == std::string::npos || c == 0 || c + 1 == s.size())
    return make_error("--http expects HOST:PORT (e.g. 127.0.0.1:8080), got \"" + s + "\"", 2);
  std::string host = s.substr(0, c), port = s.substr(c + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  for (char ch : port)
    if (!isdigit((unsigned char)ch)) return make_error("--http: port must be a number, got \"" + port + "\"", 2);
  int p = std::stoi(port);
  if (p < 0 || p > 65535) return make_error("--http: port out of range: " + port, 2);
  return std::make_pair(host, p);
}

Status serve(const ServeArgs& a) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("m1-serve"));
  std::error_code ec;
  auto ws = std::filesystem::weakly_canonical(a.workspace, ec);
  if (ec || !std::filesystem::is_directory(ws))
    return make_error("--workspace: not a directory: " + a.workspace, 2);
  mcp::ServerOptions so;
  so.workspace = ws;
  so.instructions = "m1 runtime: tools run confined to the workspace " + ws.string() + ".";
  auto registry = std::make_shared<tools::Registry>();
  if (!a.conformance && !a.no_builtin) {
#ifdef M1_HAVE_TOOLS_LIB
    tools::BuiltinToolsOptions bo;
    tools::register_builtin_tools(*registry, bo);
#else
    spdlog::warn("built-in tools are not compiled into this build (tools/ library missing)");
#endif
  }
  auto server = std::make_shared<mcp::Server>(so, registry);
  if (a.conformance) mcp::add_conformance_fixtures(*server);

  if (a.http.empty()) {
    std::signal(SIGPIPE, SIG_IGN);
    auto transport = std::make_shared<mcp::FdTransport>(0, 1);
    auto conn = server->connect(transport);
    transport->wait_closed();
    conn->close();
    return {};
  }
  M1_ASSIGN_OR_RETURN(auto hp, parse_host_port(a.http));
  mcp::HttpServerOptions ho;
  ho.host = hp.first;
  ho.port = hp.second;
  ho.token = a.token;
  ho.authorization_servers = a.auth_servers;
  ho.allowed_hosts = a.allowed_hosts;
  ho.allowed_origins = a.allowed_origins;
  // SIGINT/SIGTERM are taken by a waiting thread (blocked everywhere else) to stop cleanly.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  mcp::HttpServer http(server, ho);
  M1_TRY(http.bind());
  std::fprintf(stderr, "m1 serve: listening on http://%s:%d/mcp\n", ho.host.c_str(), http.port());
  if (!a.port_file.empty()) {
    std::ofstream(a.port_file) << http.port() << "\n";
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    http.stop();
  });
  Status st = http.run();
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return st;
}

}  // namespace

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto a = std::make_shared<ServeArgs>();
  auto* sub = root.add_subcommand("serve", "Serve the runtime's tools over MCP (stdio or Streamable HTTP)");
  sub->add_flag("--stdio", a->stdio, "Serve on stdin/stdout (the default)");
  sub->add_option("--http", a->http, "Serve Streamable HTTP on HOST:PORT (endpoint /mcp; port 0 picks one)");
  sub->add_option("--token", a->token, "HTTP: require 'Authorization: Bearer <T>'");
  sub->add_option("--workspace", a->workspace, "Directory the tools are confined to (default: .)");
  sub->add_flag("--conformance", a->conformance, "Expose only the MCP conformance suite's fixtures");
  sub->add_flag("--no-builtin-tools", a->no_builtin, "Do not register the built-in tools");
  sub->add_option("--port-file", a->port_file, "HTTP: write the bound port to this file");
  sub->add_option("--auth-server", a->auth_servers, "HTTP: authorization server URL for the RFC 9728 document");
  sub->add_option("--allowed-host", a->allowed_hosts, "HTTP: extra Host header value to accept");
  sub->add_option("--allowed-origin", a->allowed_origins, "HTTP: extra Origin to accept");
  sub->callback([a] {
    if (a->stdio && !a->http.empty()) return fail(make_error("--stdio and --http are exclusive", 2));
    Status st = serve(*a);
    if (!st.ok()) fail(st.error());
  });
});

}  // namespace m1::cli
