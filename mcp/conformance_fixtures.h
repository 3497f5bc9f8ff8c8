// mcp/conformance_fixtures.h: the tools, resources and prompts the official MCP conformance
// suite (0.1.16, server mode) expects. Only `m1 serve --conformance` adds them.
#pragma once
#include "mcp/server.h"

namespace m1::mcp {

void add_conformance_fixtures(Server& server);

}  // namespace m1::mcp
