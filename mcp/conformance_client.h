// mcp/conformance_client.h: what `m1 mcp conformance-client <url>` does for each scenario of
// the official conformance suite's client mode (names as `conformance list --client` prints).
#pragma once
#include <string>

#include "common/result.h"

namespace m1::mcp {

// Runs `scenario` against the suite's mock server at `url`; `context_json` is
// MCP_CONFORMANCE_CONTEXT (may be empty). Unknown scenarios run the generic flow
// (initialize, list tools, call each tool with schema-derived arguments).
Status run_conformance_client(const std::string& url, const std::string& scenario,
                              const std::string& context_json);

}  // namespace m1::mcp
