// tests/agent/test_openai.cpp: the openai provider against a fake chat-completions server on
// 127.0.0.1 that speaks streaming SSE: tool-call fragments, usage, a malformed stream, a dropped
// stream (once: retried; always: error), bad arguments, HTTP errors. Every request is recorded
// and checked (auth header, stream flag, tools, tool results answering calls).
#include <httplib.h>

#include <atomic>
#include <thread>

#include "agent/provider.h"
#include "test_util.h"

using nlohmann::json;
using namespace m1::agent;

namespace {

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }
json delta(json d, json finish = nullptr) {
  return {{"id", "c1"}, {"object", "chat.completion.chunk"}, {"choices", {{{"index", 0}, {"delta", d}, {"finish_reason", finish}}}}};
}

class FakeServer {
 public:
  std::string mode = "ok";
  std::atomic<int> requests{0};
  std::vector<json> bodies;
  std::vector<std::string> auth;
  int port = 0;

  FakeServer() {
    srv_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      int n = ++requests;
      bodies.push_back(json::parse(req.body));
      auth.push_back(req.get_header_value("Authorization"));
      if (mode == "401") {
        res.status = 401;
        res.set_content("{\"error\":{\"message\":\"bad key\"}}", "application/json");
        return;
      }
      std::vector<std::string> chunks = script(n);
      bool drop = mode == "drop_always" || (mode == "drop_once" && n == 1);
      res.set_chunked_content_provider("text/event-stream", [chunks, drop](size_t, httplib::DataSink& sink) {
        for (size_t i = 0; i < chunks.size(); ++i) {
          if (drop && i == 2) return false;  // connection cut mid-stream
          sink.write(chunks[i].data(), chunks[i].size());
        }
        sink.done();
        return true;
      });
    });
    port = srv_.bind_to_any_port("127.0.0.1");
    th_ = std::thread([this] { srv_.listen_after_bind(); });
    while (!srv_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~FakeServer() {
    srv_.stop();
    th_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/v1"; }

 private:
  std::vector<std::string> script(int) {
    std::vector<std::string> c;
    c.push_back(sse(delta({{"role", "assistant"}, {"reasoning_content", "hmm"}})));
    c.push_back(sse(delta({{"content", "Let me "}})));
    c.push_back(sse(delta({{"content", "look."}})));
    if (mode == "malformed") {
      c.push_back("data: {\"choices\": [ {\"delta\": \n\n");
      return c;
    }
    std::string args = mode == "bad_args" ? "{\"path\": " : "{\"path\": \"a.txt\"}";
    c.push_back(sse(delta({{"tool_calls", {{{"index", 0}, {"id", "call_A"}, {"type", "function"},
                                            {"function", {{"name", "view"}, {"arguments", ""}}}}}}})));
    c.push_back(sse(delta({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", args.substr(0, 5)}}}}}}})));
    c.push_back(sse(delta({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", args.substr(5)}}}}}}})));
    c.push_back(sse(delta({{"tool_calls", {{{"index", 1}, {"id", "call_B"}, {"function", {{"name", "list"}, {"arguments", "{}"}}}}}}})));
    c.push_back(sse(delta(json::object(), "tool_calls")));
    c.push_back(sse({{"id", "c1"}, {"choices", json::array()}, {"usage", {{"prompt_tokens", 123}, {"completion_tokens", 45}}}}));
    c.push_back("data: [DONE]\n\n");
    return c;
  }
  httplib::Server srv_;
  std::thread th_;
};

std::vector<ChatMessage> conversation() {
  return {ChatMessage::system("sys"), ChatMessage::user("fix it"),
          ChatMessage::assistant("", "", {{"call_0", "list", json::object()}}),
          ChatMessage::tool({{"call_0", "list", "a.txt\n", false}})};
}

std::unique_ptr<Provider> provider(const FakeServer& s, int retries = 2) {
  ProviderOptions o;
  o.kind = "openai";
  o.model = "fake-model";
  o.base_url = s.url();
  o.api_key = "sk-test";
  o.retries = retries;
  o.request_timeout_s = 5;
  auto p = make_provider(o);
  EXPECT_TRUE(p.ok());
  return std::move(p).value();
}

}  // namespace

TEST(OpenAI, StreamsTextThinkingAndJoinsToolCallFragments) {
  FakeServer s;
  auto p = provider(s);
  std::string text, thinking;
  StreamSink sink{[&](std::string_view t) { text += t; }, [&](std::string_view t) { thinking += t; }};
  std::vector<m1::engine::ToolDef> tools = {{"view", "view a file", {{"type", "object"}}}};
  auto r = p->complete(conversation(), tools, nullptr, sink);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(text, "Let me look.");
  EXPECT_EQ(thinking, "hmm");
  EXPECT_EQ(r->message.content, "Let me look.");
  ASSERT_EQ(r->message.tool_calls.size(), 2u);
  EXPECT_EQ(r->message.tool_calls[0], (m1::engine::ToolCall{"call_A", "view", {{"path", "a.txt"}}}));
  EXPECT_EQ(r->message.tool_calls[1], (m1::engine::ToolCall{"call_B", "list", json::object()}));
  EXPECT_EQ(r->usage.input_tokens, 123u);
  EXPECT_EQ(r->usage.output_tokens, 45u);
  EXPECT_FALSE(r->usage_estimated);
  EXPECT_EQ(r->finish_reason, "tool_calls");
  // The request: one, authorized, streamed, with tools, and every tool result answers a call.
  ASSERT_EQ(s.requests.load(), 1);
  EXPECT_EQ(s.auth[0], "Bearer sk-test");
  const json& b = s.bodies[0];
  EXPECT_EQ(b["model"], "fake-model");
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["tools"][0], (json{{"type", "function"}, {"function", {{"name", "view"}, {"description", "view a file"}, {"parameters", {{"type", "object"}}}}}}));
  ASSERT_EQ(b["messages"].size(), 4u);
  EXPECT_EQ(b["messages"][2]["tool_calls"][0]["id"], "call_0");
  EXPECT_EQ(b["messages"][2]["tool_calls"][0]["function"]["arguments"], "{}");
  EXPECT_EQ(b["messages"][3], (json{{"role", "tool"}, {"tool_call_id", "call_0"}, {"content", "a.txt\n"}}));
}

TEST(OpenAI, BadArgumentsBecomeCallErrorsNotAFailedTurn) {
  FakeServer s;
  s.mode = "bad_args";
  auto r = provider(s)->complete(conversation(), {}, nullptr, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->call_errors.size(), 1u);
  EXPECT_EQ(r->call_errors[0].name, "view");
  EXPECT_EQ(r->call_errors[0].error, "arguments of call to 'view' are not valid JSON: {\"path\": ");
  ASSERT_EQ(r->message.tool_calls.size(), 1u);  // the good call survives
  EXPECT_EQ(r->message.tool_calls[0].name, "list");
}

TEST(OpenAI, MalformedStreamIsAnErrorAfterRetries) {
  FakeServer s;
  s.mode = "malformed";
  auto r = provider(s, 1)->complete(conversation(), {}, nullptr, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("malformed SSE data"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("after 2 attempts"), std::string::npos);
  EXPECT_EQ(s.requests.load(), 2);
}

TEST(OpenAI, DroppedStreamIsRetriedThenSucceeds) {
  FakeServer s;
  s.mode = "drop_once";
  auto r = provider(s, 2)->complete(conversation(), {}, nullptr, {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(s.requests.load(), 2);
  EXPECT_EQ(r->message.tool_calls.size(), 2u);
}

TEST(OpenAI, DroppedStreamEveryTimeIsAnError) {
  FakeServer s;
  s.mode = "drop_always";
  auto r = provider(s, 1)->complete(conversation(), {}, nullptr, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("openai provider (" + s.url() + ")"), std::string::npos) << r.error().message;
  EXPECT_EQ(s.requests.load(), 2);
}

TEST(OpenAI, HttpErrorIsNotRetriedAndShowsBody) {
  FakeServer s;
  s.mode = "401";
  auto r = provider(s, 3)->complete(conversation(), {}, nullptr, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("HTTP 401"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("bad key"), std::string::npos);
  EXPECT_EQ(s.requests.load(), 1);
}

TEST(OpenAI, ConfigErrorsNameTheSetting) {
  ProviderOptions o;
  o.kind = "openai";
  o.model = "m";
  auto r = make_provider(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs a base URL"), std::string::npos);
  o.base_url = "ftp://x";
  r = make_provider(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "base URL 'ftp://x' must start with http:// or https://");
  o.kind = "nonsense";
  r = make_provider(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "unknown provider 'nonsense'; expected local, openai or scripted");
}
