// tests/mcp/test_session.cpp: the JSON-RPC Session over real pipes (FdTransport): ids,
// errors, timeouts with notifications/cancelled, progress routing, a handler that calls back
// into its peer mid-request, and the stdio transport's handling of bad and oversized lines.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "mcp/session.h"
#include "mcp/stdio_transport.h"

using namespace m1::mcp;
using namespace std::chrono_literals;

namespace {

// Two sessions joined by two pipes.
struct Pair {
  std::shared_ptr<Session> a, b;
  int fds[4];
  Pair(size_t max_bytes = 16 << 20) {
    int ab[2], ba[2];
    EXPECT_EQ(::pipe(ab), 0);
    EXPECT_EQ(::pipe(ba), 0);
    fds[0] = ab[0]; fds[1] = ab[1]; fds[2] = ba[0]; fds[3] = ba[1];
    a = Session::create(std::make_shared<FdTransport>(ba[0], ab[1], max_bytes), {});
    b = Session::create(std::make_shared<FdTransport>(ab[0], ba[1], max_bytes), {});
  }
  void start() {
    ASSERT_TRUE(a->start().ok());
    ASSERT_TRUE(b->start().ok());
  }
  ~Pair() {
    a->close();
    b->close();
    for (int fd : fds) ::close(fd);
  }
};

// Reads one line written by the peer under test from `fd` (blocking, test helper).
std::string read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

}  // namespace

TEST(McpSession, RequestResponseAndErrors) {
  Pair p;
  p.b->on_request("add", [](const json& params, RequestContext&) {
    return json{{"sum", params.at("a").get<int>() + params.at("b").get<int>()}};
  });
  p.b->on_request("bad", [](const json&, RequestContext&) -> json {
    throw RpcError{err::kInvalidParams, "nope", {{"field", "x"}}};
  });
  p.start();
  Reply r = p.a->request("add", {{"a", 2}, {"b", 40}});
  ASSERT_TRUE(r.ok()) << r.error->describe();
  EXPECT_EQ(r.result, (json{{"sum", 42}}));
  r = p.a->request("bad", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code, err::kInvalidParams);
  EXPECT_EQ(r.error->message, "nope");
  EXPECT_EQ(r.error->data, (json{{"field", "x"}}));
  r = p.a->request("missing/method", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code, err::kMethodNotFound);
  r = p.a->request("ping", json::object());  // built in on every session
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.result, json::object());
}

TEST(McpSession, TimeoutSendsCancelledAndHandlerSeesIt) {
  Pair p;
  std::atomic<bool> saw_cancel{false};
  p.b->on_request("slow", [&](const json&, RequestContext& ctx) {
    for (int i = 0; i < 200 && !ctx.cancelled; ++i) std::this_thread::sleep_for(10ms);
    saw_cancel = ctx.cancelled.load();
    return json::object();
  });
  p.start();
  RequestOptions o;
  o.timeout = 100ms;
  auto t0 = std::chrono::steady_clock::now();
  Reply r = p.a->request("slow", json::object(), o);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code, err::kRequestTimeout);
  EXPECT_LT(elapsed, 1500ms);
  for (int i = 0; i < 100 && !saw_cancel; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(saw_cancel) << "peer handler never saw notifications/cancelled";
}

TEST(McpSession, CallerCancelFlag) {
  Pair p;
  p.b->on_request("slow", [&](const json&, RequestContext& ctx) {
    for (int i = 0; i < 300 && !ctx.cancelled; ++i) std::this_thread::sleep_for(10ms);
    return json::object();
  });
  p.start();
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(50ms);
    cancel = true;
  });
  RequestOptions o;
  o.cancel = &cancel;
  Reply r = p.a->request("slow", json::object(), o);
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message.find("cancelled"), std::string::npos) << r.error->message;
}

TEST(McpSession, ProgressIsRoutedToTheCaller) {
  Pair p;
  p.b->on_request("work", [](const json&, RequestContext& ctx) {
    EXPECT_TRUE(ctx.has_progress_token());
    for (int i = 1; i <= 3; ++i) ctx.progress(i, 3, "step " + std::to_string(i));
    return json{{"done", true}};
  });
  p.start();
  std::vector<json> seen;
  RequestOptions o;
  o.on_progress = [&](const json& pr) { seen.push_back(pr); };
  Reply r = p.a->request("work", json::object(), o);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2]["progress"], 3);
  EXPECT_EQ(seen[2]["total"], 3);
  EXPECT_EQ(seen[2]["message"], "step 3");
}

TEST(McpSession, HandlerCanCallBackIntoThePeerMidRequest) {
  Pair p;
  p.a->on_request("sampling/createMessage", [](const json& params, RequestContext&) {
    return json{{"echo", params.at("q")}};
  });
  p.b->on_request("tools/call", [](const json&, RequestContext& ctx) {
    Reply inner = ctx.request("sampling/createMessage", {{"q", "hi"}});
    EXPECT_TRUE(inner.ok());
    return json{{"inner", inner.result}};
  });
  p.start();
  Reply r = p.a->request("tools/call", json::object());
  ASSERT_TRUE(r.ok()) << r.error->describe();
  EXPECT_EQ(r.result, (json{{"inner", {{"echo", "hi"}}}}));
}

TEST(McpStdio, BadLinesGetErrorsAndServingContinues) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  auto s = Session::create(std::make_shared<FdTransport>(in[0], out[1], /*max_message_bytes=*/1024), {});
  ASSERT_TRUE(s->start().ok());
  auto write_line = [&](const std::string& l) { ASSERT_EQ(::write(in[1], l.data(), l.size()), (ssize_t)l.size()); };

  write_line("{not json\n");
  json e = json::parse(read_line(out[0]));
  EXPECT_EQ(e["error"]["code"], err::kParseError);
  EXPECT_TRUE(e["id"].is_null());

  write_line("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]\n");  // batches are not 2025-11-25
  e = json::parse(read_line(out[0]));
  EXPECT_EQ(e["error"]["code"], err::kInvalidRequest);

  write_line("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}\n");  // null id
  e = json::parse(read_line(out[0]));
  EXPECT_EQ(e["error"]["code"], err::kInvalidRequest);

  write_line("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":{\"pad\":\"" + std::string(3000, 'x') + "\"}}\n");
  e = json::parse(read_line(out[0]));
  EXPECT_EQ(e["error"]["code"], err::kInvalidRequest);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("1024"), std::string::npos);

  write_line("{\"jsonrpc\":\"2.0\",\"id\":\"still-alive\",\"method\":\"ping\"}\n");
  e = json::parse(read_line(out[0]));
  EXPECT_EQ(e, (json{{"jsonrpc", "2.0"}, {"id", "still-alive"}, {"result", json::object()}}));
  s->close();
  for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
}
