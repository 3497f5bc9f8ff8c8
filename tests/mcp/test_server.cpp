// tests/mcp/test_server.cpp: the Server facade over stdio pipes with raw JSON lines (lifecycle,
// version negotiation, pagination, bad input), registry tools behind tools/call, and our Client
// driving the fixture server in a child process (ProcessTransport) through every feature.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "mcp/client.h"
#include "mcp/client_manager.h"
#include "mcp/server.h"
#include "mcp/stdio_transport.h"

using namespace m1;
using namespace m1::mcp;
using namespace std::chrono_literals;

namespace {

class EchoTool : public tools::Tool {
 public:
  explicit EchoTool(std::string name) {
    spec_.name = std::move(name);
    spec_.description = "echoes";
    spec_.input_schema = {{"type", "object"},
                          {"properties", {{"text", {{"type", "string"}}}}},
                          {"required", {"text"}}};
    spec_.read_only = true;
  }
  const tools::ToolSpec& spec() const override { return spec_; }
  tools::ToolResult call(const json& args, tools::ToolContext& ctx) override {
    if (ctx.progress) ctx.progress(1, 1, "echoing");
    auto r = tools::ToolResult::ok_text(args.at("text").get<std::string>());
    r.structured = json{{"echoed", args.at("text")}};
    return r;
  }

 private:
  tools::ToolSpec spec_;
};

// A server on pipes; send() writes a raw line, recv() reads one reply line.
struct RawServer {
  int in[2], out[2];
  std::shared_ptr<Server> server;
  std::shared_ptr<ServerConnection> conn;
  explicit RawServer(size_t page = 100) {
    EXPECT_EQ(::pipe(in), 0);
    EXPECT_EQ(::pipe(out), 0);
    auto reg = std::make_shared<tools::Registry>();
    for (int i = 0; i < 5; ++i) reg->add(std::make_shared<EchoTool>("echo" + std::to_string(i)));
    ServerOptions so;
    so.page_size = page;
    server = std::make_shared<Server>(so, reg);
    conn = server->connect(std::make_shared<FdTransport>(in[0], out[1]));
  }
  ~RawServer() {
    conn->close();
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
  }
  json call(const json& msg) {
    std::string l = msg.dump() + "\n";
    EXPECT_EQ(::write(in[1], l.data(), l.size()), (ssize_t)l.size());
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    return json::parse(line);
  }
  json init(const std::string& version = "2025-11-25") {
    json r = call({{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"},
                   {"params", {{"protocolVersion", version}, {"capabilities", json::object()},
                               {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}});
    std::string l = json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}.dump() + "\n";
    EXPECT_EQ(::write(in[1], l.data(), l.size()), (ssize_t)l.size());
    return r;
  }
};

json req(int id, const std::string& method, json params = json::object()) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
}

std::string peer_path() { return M1_MCP_PEER; }

}  // namespace

TEST(McpServer, RequestsBeforeInitializeAreRefusedButPingWorks) {
  RawServer s;
  json r = s.call(req(1, "tools/list"));
  EXPECT_EQ(r["error"]["code"], err::kInvalidRequest);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("not initialized"), std::string::npos);
  r = s.call(req(2, "ping"));
  EXPECT_EQ(r["result"], json::object());
}

TEST(McpServer, VersionNegotiation) {
  {
    RawServer s;
    EXPECT_EQ(s.init("2025-06-18")["result"]["protocolVersion"], "2025-06-18");
  }
  {
    RawServer s;
    json r = s.init("1999-01-01");
    EXPECT_EQ(r["result"]["protocolVersion"], "2025-11-25");
    EXPECT_EQ(r["result"]["serverInfo"]["name"], "m1");
    EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
    EXPECT_FALSE(r["result"]["capabilities"].contains("prompts"));  // none registered
  }
  {
    RawServer s;
    json r = s.call(req(1, "initialize", {{"capabilities", json::object()}}));
    EXPECT_EQ(r["error"]["code"], err::kInvalidParams);  // protocolVersion missing
  }
}

TEST(McpServer, SecondInitializeAndBadParams) {
  RawServer s;
  s.init();
  EXPECT_EQ(s.init()["error"]["code"], err::kInvalidRequest);
  EXPECT_EQ(s.call(req(3, "tools/call", {{"arguments", json::object()}}))["error"]["code"], err::kInvalidParams);
  EXPECT_EQ(s.call(req(4, "tools/call", {{"name", "nope"}}))["error"]["code"], err::kInvalidParams);
  EXPECT_EQ(s.call(req(5, "logging/setLevel", {{"level", "loud"}}))["error"]["code"], err::kInvalidParams);
  EXPECT_EQ(s.call(req(6, "no/such"))["error"]["code"], err::kMethodNotFound);
  EXPECT_EQ(s.call(req(7, "resources/read", {{"uri", "x://y"}}))["error"]["code"], err::kResourceNotFound);
}

TEST(McpServer, PaginationAndRegistryTools) {
  RawServer s(2);
  s.init();
  std::vector<std::string> names;
  json cursor;
  for (int page = 0; page < 10; ++page) {
    json params = json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    json r = s.call(req(10 + page, "tools/list", params));
    ASSERT_TRUE(r.contains("result")) << r.dump();
    EXPECT_LE(r["result"]["tools"].size(), 2u);
    for (auto& t : r["result"]["tools"]) names.push_back(t["name"]);
    if (!r["result"].contains("nextCursor")) break;
    cursor = r["result"]["nextCursor"];
  }
  EXPECT_EQ(names, (std::vector<std::string>{"echo0", "echo1", "echo2", "echo3", "echo4"}));
  EXPECT_EQ(s.call(req(30, "tools/list", {{"cursor", "banana"}}))["error"]["code"], err::kInvalidParams);

  json r = s.call(req(31, "tools/call", {{"name", "echo1"}, {"arguments", {{"text", "hey"}}}}));
  EXPECT_EQ(r["result"], (json{{"content", {{{"type", "text"}, {"text", "hey"}}}},
                               {"structuredContent", {{"echoed", "hey"}}}}));
  // Schema violations are tool errors the model can read, not protocol errors.
  r = s.call(req(32, "tools/call", {{"name", "echo1"}, {"arguments", {{"text", 5}}}}));
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("text"), std::string::npos);
}

TEST(McpClient, DrivesTheFixtureServerOverStdio) {
  auto t = ProcessTransport::spawn({peer_path(), {"serve-stdio"}, {}, "", true});
  ASSERT_TRUE(t.ok()) << t.error().message;
  ClientOptions co;
  std::atomic<int> sampled{0};
  co.sampling = [&](const json& p) -> Result<json> {
    ++sampled;
    return json{{"role", "assistant"},
                {"content", text_content("model says: " + p["messages"][0]["content"]["text"].get<std::string>())},
                {"model", "fake"}};
  };
  co.elicitation = [](const json&) { return json{{"action", "accept"}, {"content", {{"username", "u"}, {"email", "e"}}}}; };
  std::vector<json> logs;
  std::mutex logs_mu;
  co.on_log = [&](const json& p) {
    std::lock_guard lk(logs_mu);
    logs.push_back(p);
  };
  auto c = Client::connect(t.value(), co);
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto& client = *c.value();
  EXPECT_EQ(client.protocol_version(), "2025-11-25");
  auto tools = client.list_tools();
  ASSERT_TRUE(tools.ok());
  EXPECT_EQ(tools.value().size(), 14u);

  auto r = client.call_tool("test_sampling", {{"prompt", "2+2?"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value()["content"][0]["text"], "LLM response: model says: 2+2?");
  EXPECT_EQ(sampled, 1);

  r = client.call_tool("test_elicitation", {{"message", "who?"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value()["content"][0]["text"], "User response: action=accept, content={\"email\":\"e\",\"username\":\"u\"}");

  std::vector<double> progress;
  CallOptions o;
  o.on_progress = [&](const json& p) { progress.push_back(p["progress"]); };
  r = client.call_tool("test_tool_with_progress", json::object(), o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(progress, (std::vector<double>{0, 50, 100}));

  ASSERT_TRUE(client.set_log_level("info").ok());
  r = client.call_tool("test_tool_with_logging", json::object());
  ASSERT_TRUE(r.ok());
  std::this_thread::sleep_for(50ms);
  {
    std::lock_guard lk(logs_mu);
    ASSERT_EQ(logs.size(), 3u);
    EXPECT_EQ(logs[0]["data"], "Tool execution started");
  }
  r = client.call_tool("test_error_handling", json::object());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value()["isError"], true);
  r = client.call_tool("does_not_exist", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("-32602"), std::string::npos) << r.error().message;

  auto res = client.read_resource("test://template/9/data");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(json::parse(res.value()["contents"][0]["text"].get<std::string>())["id"], "9");
  auto pr = client.get_prompt("test_prompt_with_arguments", {{"arg1", "x"}, {"arg2", "y"}});
  ASSERT_TRUE(pr.ok());
  EXPECT_EQ(pr.value()["messages"][0]["content"]["text"], "Prompt with arguments: arg1='x', arg2='y'");
  EXPECT_TRUE(client.ping().ok());
  client.close();
}

TEST(McpClientManager, RegistersNamespacedToolsAndRejectsBadConfig) {
  json cfg = {{"mcpServers", {{"fx", {{"command", peer_path()}, {"args", {"serve-stdio"}}}}}}};
  auto servers = parse_mcp_servers(cfg);
  ASSERT_TRUE(servers.ok()) << servers.error().message;
  tools::Registry reg;
  ClientManager mgr{ClientOptions{}};
  ASSERT_TRUE(mgr.add(servers.value()[0], reg).ok());
  auto tool = reg.find("fx__test_simple_text");
  ASSERT_TRUE(tool);
  tools::ToolContext ctx;
  auto out = reg.call("fx__test_simple_text", json::object(), ctx);
  EXPECT_FALSE(out.is_error);
  EXPECT_EQ(out.text(), "This is a simple text response for testing.");
  out = reg.call("fx__test_error_handling", json::object(), ctx);
  EXPECT_TRUE(out.is_error);
  mgr.close_all();

  EXPECT_FALSE(parse_mcp_servers(json{{"servers", json::object()}}).ok());
  auto bad = parse_mcp_servers(json{{"mcpServers", {{"x", {{"args", {"a"}}}}}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("mcpServers.x"), std::string::npos);
  EXPECT_FALSE(parse_mcp_servers(json{{"mcpServers", {{"x", {{"command", "a"}, {"env", {{"K", 1}}}}}}}}).ok());
  auto missing = ProcessTransport::spawn({"/nonexistent/mcp-server", {}, {}, "", true});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/mcp-server"), std::string::npos);
}
