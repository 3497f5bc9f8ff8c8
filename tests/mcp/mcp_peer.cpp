// tests/mcp/mcp_peer.cpp: a small executable over m1_mcp alone, so the MCP tests and the
// conformance runs during development do not wait on the whole `m1` binary (which links every
// module). It serves the same things `m1 serve --conformance` serves and runs the same
// conformance client: `mcp_peer serve-stdio`, `mcp_peer serve-http HOST:PORT [PORTFILE]`,
// `mcp_peer conformance-client URL`.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "mcp/conformance_client.h"
#include "mcp/conformance_fixtures.h"
#include "mcp/http_server.h"
#include "mcp/stdio_transport.h"

using namespace m1;

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("mcp-peer"));
  std::signal(SIGPIPE, SIG_IGN);
  std::string cmd = argc > 1 ? argv[1] : "";
  auto server = std::make_shared<mcp::Server>(mcp::ServerOptions{}, std::make_shared<tools::Registry>());
  mcp::add_conformance_fixtures(*server);
  if (cmd == "serve-stdio") {
    auto t = std::make_shared<mcp::FdTransport>(0, 1);
    auto conn = server->connect(t);
    t->wait_closed();
    conn->close();
    return 0;
  }
  if (cmd == "serve-http" && argc > 2) {
    std::string hp = argv[2];
    mcp::HttpServerOptions o;
    o.host = hp.substr(0, hp.rfind(':'));
    o.port = std::atoi(hp.substr(hp.rfind(':') + 1).c_str());
    if (const char* tok = std::getenv("MCP_PEER_TOKEN")) o.token = tok;
    mcp::HttpServer http(server, o);
    Status st = http.bind();
    if (!st.ok()) {
      std::fprintf(stderr, "mcp_peer: %s\n", st.error().message.c_str());
      return 1;
    }
    if (argc > 3) std::ofstream(argv[3]) << http.port() << "\n";
    std::fprintf(stderr, "mcp_peer: listening on %d\n", http.port());
    return http.run().ok() ? 0 : 1;
  }
  if (cmd == "conformance-client" && argc > 2) {
    const char* sc = std::getenv("MCP_CONFORMANCE_SCENARIO");
    const char* ctx = std::getenv("MCP_CONFORMANCE_CONTEXT");
    Status st = mcp::run_conformance_client(argv[argc - 1], sc ? sc : "", ctx ? ctx : "");
    if (!st.ok()) {
      std::fprintf(stderr, "mcp_peer: %s\n", st.error().message.c_str());
      return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "usage: mcp_peer serve-stdio | serve-http HOST:PORT [PORTFILE] | conformance-client URL\n");
  return 2;
}
