// mcp/conformance_client.cpp: the conformance suite's client scenarios (see header). The
// client under test is the real one (HttpClientTransport + Client + OAuth provider); this file
// only decides what to do after connecting, as a user of the client would.
#include "mcp/conformance_client.h"

#include <spdlog/spdlog.h>

#include "mcp/client.h"
#include "mcp/http_client.h"
#include "mcp/oauth.h"

namespace m1::mcp {

namespace {

// Arguments that satisfy a tool's input schema well enough for a smoke call.
json sample_args(const json& schema) {
  json args = json::object();
  if (!schema.is_object() || !schema.contains("properties")) return args;
  for (auto& [name, prop] : schema["properties"].items()) {
    std::string type = prop.is_object() ? prop.value("type", "string") : "string";
    if (prop.is_object() && prop.contains("default")) args[name] = prop["default"];
    else if (type == "number" || type == "integer") args[name] = 1;
    else if (type == "boolean") args[name] = true;
    else if (type == "array") args[name] = json::array();
    else if (type == "object") args[name] = json::object();
    else args[name] = "test";
  }
  return args;
}

}  // namespace

Status run_conformance_client(const std::string& url, const std::string& scenario,
                              const std::string& context_json) {
  json context = context_json.empty() ? json::object() : json::parse(context_json, nullptr, false);
  if (context.is_discarded()) return make_error("MCP_CONFORMANCE_CONTEXT is not valid JSON");
  HttpClientOptions ho;
  ho.url = url;
  if (scenario.rfind("auth/", 0) == 0) {
    OAuthOptions oo;
    oo.resource_url = url;
    oo.context = context;
    oo.client_metadata_url = "https://conformance-test.local/client-metadata.json";  // the suite's CIMD URL
    ho.auth = std::make_shared<OAuthProvider>(oo);
  }
  M1_ASSIGN_OR_RETURN(auto transport, HttpClientTransport::create(ho));
  ClientOptions co;
  co.info = Implementation{"m1-conformance-client", "0.1.0", ""};
  co.request_timeout = std::chrono::milliseconds(20000);
  // Non-interactive policy the scenarios expect: accept, filling in the schema's defaults.
  co.elicitation = [](const json& p) {
    return json{{"action", "accept"}, {"content", defaults_from_schema(p.value("requestedSchema", json::object()))}};
  };
  co.sampling = [](const json&) -> Result<json> {
    return json{{"role", "assistant"},
                {"content", text_content("conformance client sample")},
                {"model", "m1-conformance"},
                {"stopReason", "endTurn"}};
  };
  M1_ASSIGN_OR_RETURN(auto client, Client::connect(transport, co));
  auto tools = client->list_tools();
  if (!tools.ok()) {
    client->close();
    return tools.error();
  }
  Status result;
  if (scenario == "initialize") {
    // The handshake and a listing are the whole scenario.
  } else if (scenario == "tools_call") {
    auto r = client->call_tool("add_numbers", {{"a", 5}, {"b", 3}});
    if (!r.ok()) result = r.error();
  } else {
    // Generic: call every tool the server lists (elicitation defaults, sse-retry, auth, ...).
    for (auto& t : tools.value()) {
      auto r = client->call_tool(t.value("name", ""), sample_args(t.value("inputSchema", json::object())));
      if (!r.ok()) {
        result = make_error("tools/call " + t.value("name", "") + ": " + r.error().message);
        break;
      }
    }
  }
  client->close();
  return result;
}

}  // namespace m1::mcp
