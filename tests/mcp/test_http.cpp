// tests/mcp/test_http.cpp: the Streamable HTTP server's guards and status codes with raw HTTP
// requests (bad JSON, sessions, protocol header, Host/Origin, bearer token + RFC 9728 document,
// body limit, methods), then our HTTP client transport end to end, including an SSE stream the
// server cuts mid-call and the client resumes with Last-Event-ID.
#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "mcp/client.h"
#include "mcp/conformance_fixtures.h"
#include "mcp/http_client.h"
#include "mcp/http_server.h"

using namespace m1;
using namespace m1::mcp;

namespace {

struct Running {
  std::shared_ptr<Server> server;
  std::unique_ptr<HttpServer> http;
  std::thread thread;
  explicit Running(HttpServerOptions o = {}) {
    server = std::make_shared<Server>(ServerOptions{}, std::make_shared<tools::Registry>());
    add_conformance_fixtures(*server);
    o.max_body_bytes = 64 * 1024;
    http = std::make_unique<HttpServer>(server, o);
    EXPECT_TRUE(http->bind().ok());
    thread = std::thread([this] { (void)http->run(); });
  }
  ~Running() {
    http->stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(http->port()) + "/mcp"; }
  httplib::Client raw() const { return httplib::Client("127.0.0.1", http->port()); }
};

const httplib::Headers kAccept = {{"Accept", "application/json, text/event-stream"}};

std::string init_body() {
  return json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
              {"params", {{"protocolVersion", "2025-11-25"}, {"capabilities", json::object()},
                          {"clientInfo", {{"name", "raw"}, {"version", "1"}}}}}}.dump();
}

httplib::Headers with(httplib::Headers h, const std::string& k, const std::string& v) {
  h.emplace(k, v);
  return h;
}

}  // namespace

TEST(McpHttp, StatusCodesForBadInput) {
  Running s;
  auto cli = s.raw();
  auto r = cli.Post("/mcp", kAccept, "{oops", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], err::kParseError);

  std::string ping = json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}.dump();
  r = cli.Post("/mcp", kAccept, ping, "application/json");
  EXPECT_EQ(r->status, 400);  // no session id
  r = cli.Post("/mcp", with(kAccept, "Mcp-Session-Id", "deadbeef"), ping, "application/json");
  EXPECT_EQ(r->status, 404);  // unknown session

  r = cli.Post("/mcp", kAccept, init_body(), "application/json");
  ASSERT_EQ(r->status, 200);
  std::string sid = r->get_header_value("Mcp-Session-Id");
  ASSERT_EQ(sid.size(), 32u);
  EXPECT_EQ(json::parse(r->body)["result"]["protocolVersion"], "2025-11-25");
  auto h = with(kAccept, "Mcp-Session-Id", sid);

  r = cli.Post("/mcp", with(h, "MCP-Protocol-Version", "1999-01-01"), ping, "application/json");
  EXPECT_EQ(r->status, 400);
  r = cli.Post("/mcp", with(h, "MCP-Protocol-Version", "2025-06-18"), ping, "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["result"], json::object());
  r = cli.Post("/mcp", h, json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}.dump(), "application/json");
  EXPECT_EQ(r->status, 202);
  r = cli.Post("/mcp", h, R"({"jsonrpc":"2.0","id":3})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], err::kInvalidRequest);
  r = cli.Post("/mcp", h, std::string(100 * 1024, ' '), "application/json");
  EXPECT_EQ(r->status, 413);
  r = cli.Put("/mcp", h, "{}", "application/json");
  EXPECT_EQ(r->status, 405);
  r = cli.Get("/mcp", with(httplib::Headers{{"Accept", "application/json"}}, "Mcp-Session-Id", sid));
  EXPECT_EQ(r->status, 406);

  r = cli.Post("/mcp", with(h, "Host", "evil.example:80"), ping, "application/json");
  EXPECT_EQ(r->status, 403);
  r = cli.Post("/mcp", with(h, "Origin", "http://evil.example"), ping, "application/json");
  EXPECT_EQ(r->status, 403);
  r = cli.Post("/mcp", with(h, "Origin", "http://localhost:5173"), ping, "application/json");
  EXPECT_EQ(r->status, 200);

  r = cli.Delete("/mcp", h);
  EXPECT_EQ(r->status, 200);
  r = cli.Post("/mcp", h, ping, "application/json");
  EXPECT_EQ(r->status, 404);  // ended session
}

TEST(McpHttp, BearerTokenAndProtectedResourceMetadata) {
  HttpServerOptions o;
  o.token = "s3cret";
  o.authorization_servers = {"https://auth.example"};
  Running s(o);
  auto cli = s.raw();
  auto r = cli.Post("/mcp", kAccept, init_body(), "application/json");
  ASSERT_EQ(r->status, 401);
  std::string www = r->get_header_value("WWW-Authenticate");
  std::string prm_url = "http://127.0.0.1:" + std::to_string(s.http->port()) + "/.well-known/oauth-protected-resource/mcp";
  EXPECT_NE(www.find("Bearer"), std::string::npos);
  EXPECT_NE(www.find("resource_metadata=\"" + prm_url + "\""), std::string::npos) << www;
  r = cli.Get("/.well-known/oauth-protected-resource/mcp");
  ASSERT_EQ(r->status, 200);
  json doc = json::parse(r->body);
  EXPECT_EQ(doc["resource"], s.url());
  EXPECT_EQ(doc["authorization_servers"], json::array({"https://auth.example"}));
  r = cli.Post("/mcp", with(kAccept, "Authorization", "Bearer wrong"), init_body(), "application/json");
  EXPECT_EQ(r->status, 401);
  r = cli.Post("/mcp", with(kAccept, "Authorization", "Bearer s3cret"), init_body(), "application/json");
  EXPECT_EQ(r->status, 200);
}

TEST(McpHttp, ClientEndToEndWithStreamResumption) {
  Running s;
  HttpClientOptions ho;
  ho.url = s.url();
  auto t = HttpClientTransport::create(ho);
  ASSERT_TRUE(t.ok());
  ClientOptions co;
  co.sampling = [](const json&) -> Result<json> {
    return json{{"role", "assistant"}, {"content", text_content("42")}, {"model", "m"}};
  };
  auto c = Client::connect(t.value(), co);
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto& client = *c.value();
  EXPECT_EQ(t.value()->session_id().size(), 32u);
  auto r = client.call_tool("test_simple_text", json::object());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value()["content"][0]["text"], "This is a simple text response for testing.");
  // Sampling mid-call: the server's request travels on the POST's SSE stream.
  r = client.call_tool("test_sampling", {{"prompt", "q"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value()["content"][0]["text"], "LLM response: 42");
  // The server ends this call's SSE stream mid-call; the result must arrive via GET resume.
  auto t0 = std::chrono::steady_clock::now();
  r = client.call_tool("test_reconnection", json::object());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value()["content"][0]["text"], "Reconnection test completed successfully");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));  // waited retry: 1000
  // Concurrent calls on one session.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      auto rr = client.call_tool("test_tool_with_progress", json::object());
      if (rr.ok() && rr.value()["content"][0]["text"] == "Tool with progress executed successfully") ++ok;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 8);
  client.close();
}
