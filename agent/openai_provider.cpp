// agent/openai_provider.cpp: any OpenAI-compatible chat-completions endpoint, streamed over SSE
// (`stream: true`, `tools`, `tool_calls`). Tool-call fragments are joined per `index`; arguments
// that are not a JSON object become per-call format errors for the model, not a failed turn.
// A stream that ends without `[DONE]`/finish_reason, a malformed `data:` line or a non-200
// status is a transport failure: retried `retries` times, then an Error naming what went wrong.
#include <httplib.h>

#include <chrono>
#include <map>
#include <thread>

#include "agent/provider.h"

using nlohmann::json;

namespace m1::agent {

namespace {

json to_openai_messages(const std::vector<ChatMessage>& conv) {
  json out = json::array();
  for (const auto& m : conv) {
    switch (m.role) {
      case Role::System: out.push_back({{"role", "system"}, {"content", m.content}}); break;
      case Role::User: out.push_back({{"role", "user"}, {"content", m.content}}); break;
      case Role::Assistant: {
        json a = {{"role", "assistant"}, {"content", m.content}};
        if (!m.tool_calls.empty()) {
          a["tool_calls"] = json::array();
          for (const auto& c : m.tool_calls)
            a["tool_calls"].push_back({{"id", c.id}, {"type", "function"},
                                       {"function", {{"name", c.name}, {"arguments", c.arguments.dump()}}}});
        }
        out.push_back(a);
        break;
      }
      case Role::Tool:
        for (const auto& r : m.tool_results)
          out.push_back({{"role", "tool"}, {"tool_call_id", r.call_id}, {"content", r.content}});
        break;
    }
  }
  return out;
}

struct PartialCall { std::string id, name, args; };

// Accumulates one streamed response.
struct StreamState {
  std::string buffer, text, thinking, finish_reason, error;
  std::map<int, PartialCall> calls;
  bool done = false;
  Usage usage;
  bool have_usage = false;

  // Handles one SSE `data:` payload; false on a malformed payload.
  bool on_data(const std::string& data, const StreamSink& sink) {
    if (data == "[DONE]") { done = true; return true; }
    json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      error = "malformed SSE data (not a JSON object): " + data.substr(0, 200);
      return false;
    }
    if (j.contains("error")) {
      error = "server error in stream: " + j["error"].dump();
      return false;
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      usage.input_tokens = j["usage"].value("prompt_tokens", uint64_t{0});
      usage.output_tokens = j["usage"].value("completion_tokens", uint64_t{0});
      have_usage = true;
    }
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return true;
    const json& ch = j["choices"][0];
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string())
      finish_reason = ch["finish_reason"];
    if (!ch.contains("delta") || !ch["delta"].is_object()) return true;
    const json& d = ch["delta"];
    for (const char* key : {"reasoning_content", "reasoning"})
      if (d.contains(key) && d[key].is_string()) {
        thinking += d[key].get<std::string>();
        if (sink.on_thinking) sink.on_thinking(d[key].get<std::string>());
      }
    if (d.contains("content") && d["content"].is_string()) {
      text += d["content"].get<std::string>();
      if (sink.on_text) sink.on_text(d["content"].get<std::string>());
    }
    if (d.contains("tool_calls") && d["tool_calls"].is_array())
      for (const auto& tc : d["tool_calls"]) {
        PartialCall& pc = calls[tc.value("index", 0)];
        if (tc.contains("id") && tc["id"].is_string()) pc.id = tc["id"];
        if (tc.contains("function") && tc["function"].is_object()) {
          const json& f = tc["function"];
          if (f.contains("name") && f["name"].is_string()) pc.name += f["name"].get<std::string>();
          if (f.contains("arguments") && f["arguments"].is_string()) pc.args += f["arguments"].get<std::string>();
        }
      }
    return true;
  }

  // Feeds raw bytes; splits SSE events on blank lines.
  bool feed(const char* data, size_t n, const StreamSink& sink) {
    buffer.append(data, n);
    size_t pos;
    while ((pos = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, pos);
      buffer.erase(0, pos + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data:", 0) != 0) continue;  // comments, event:, id:, blank separators
      std::string payload = line.substr(5);
      if (!payload.empty() && payload[0] == ' ') payload.erase(0, 1);
      if (!on_data(payload, sink)) return false;
    }
    return true;
  }
};

class OpenAIProvider : public Provider {
 public:
  explicit OpenAIProvider(ProviderOptions o) : o_(std::move(o)) {
    // base_url = scheme://host[:port][/prefix]
    auto scheme_end = o_.base_url.find("://");
    auto path_start = o_.base_url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    host_ = o_.base_url.substr(0, path_start);
    prefix_ = path_start == std::string::npos ? "" : o_.base_url.substr(path_start);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  }
  std::string label() const override { return "openai:" + o_.model; }

  Result<ModelTurn> complete(const std::vector<ChatMessage>& conv,
                             const std::vector<engine::ToolDef>& tools,
                             const std::atomic<bool>* cancel, const StreamSink& sink) override {
    json body = {{"model", o_.model}, {"messages", to_openai_messages(conv)}, {"stream", true},
                 {"stream_options", {{"include_usage", true}}}, {"temperature", o_.temperature},
                 {"max_tokens", o_.max_output_tokens}};
    if (!tools.empty()) {
      body["tools"] = json::array();
      for (const auto& t : tools)
        body["tools"].push_back({{"type", "function"},
                                 {"function", {{"name", t.name}, {"description", t.description},
                                               {"parameters", t.parameters}}}});
    }
    std::string last_error;
    for (int attempt = 0; attempt <= o_.retries; ++attempt) {
      if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt));
      if (cancel && cancel->load()) return make_error("cancelled before the request");
      StreamState st;
      auto r = request(body.dump(), cancel, sink, st);
      if (r.ok()) return finish(st, conv);
      last_error = r.error().message;
      if (last_error.rfind("cancelled", 0) == 0 || r.error().code == 3) return r.error();
    }
    return make_error("openai provider (" + o_.base_url + "): " + last_error + " (after " +
                      std::to_string(o_.retries + 1) + " attempts)");
  }

 private:
  Status request(const std::string& body, const std::atomic<bool>* cancel, const StreamSink& sink,
                 StreamState& st) {
    httplib::Client cli(host_);
    if (!cli.is_valid()) return make_error("invalid base URL '" + o_.base_url + "'", 3);
    cli.set_connection_timeout(10);
    cli.set_read_timeout(static_cast<time_t>(o_.request_timeout_s));
    cli.set_write_timeout(30);
    httplib::Request req;
    req.method = "POST";
    req.path = prefix_ + "/chat/completions";
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "text/event-stream"}};
    if (!o_.api_key.empty()) req.headers.emplace("Authorization", "Bearer " + o_.api_key);
    req.body = body;
    std::string raw;  // kept for error bodies
    bool parse_failed = false;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (cancel && cancel->load()) return false;
      if (raw.size() < 4096) raw.append(data, std::min<size_t>(n, 4096 - raw.size()));
      if (!st.feed(data, n, sink)) { parse_failed = true; return false; }
      return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    bool ok = cli.send(req, res, err);
    if (cancel && cancel->load()) return make_error("cancelled during the model response");
    if (parse_failed) return make_error(st.error);
    if (res.status != -1 && res.status != 200)
      return make_error("HTTP " + std::to_string(res.status) + " from " + req.path + ": " + raw.substr(0, 500),
                        res.status == 401 || res.status == 404 || res.status == 400 ? 3 : 1);
    if (!ok) return make_error("request failed: " + httplib::to_string(err));
    if (!st.buffer.empty()) st.feed("\n", 1, sink);
    if (!st.done && st.finish_reason.empty())
      return make_error("stream ended before [DONE] or a finish_reason (connection dropped?)");
    return {};
  }

  Result<ModelTurn> finish(StreamState& st, const std::vector<ChatMessage>& conv) {
    ModelTurn turn;
    std::vector<engine::ToolCall> calls;
    for (auto& [idx, pc] : st.calls) {
      std::string id = pc.id.empty() ? "call_" + std::to_string(idx) : pc.id;
      if (pc.name.empty()) {
        turn.call_errors.push_back({"", pc.args, "tool call " + std::to_string(idx) + " has no function name"});
        continue;
      }
      auto args = parse_call_arguments(pc.name, pc.args);
      if (!args.ok()) {
        turn.call_errors.push_back({pc.name, pc.args, args.error().message});
        continue;
      }
      calls.push_back({id, pc.name, *args});
    }
    turn.message = ChatMessage::assistant(st.text, st.thinking, calls);
    turn.finish_reason = st.finish_reason;
    if (st.have_usage) {
      turn.usage = st.usage;
      turn.usage_estimated = false;
    } else {
      for (const auto& m : conv) turn.usage.input_tokens += count_tokens(m.content);
      turn.usage.output_tokens = count_tokens(st.text) + count_tokens(st.thinking);
    }
    return turn;
  }

  ProviderOptions o_;
  std::string host_, prefix_;
};

}  // namespace

Result<std::unique_ptr<Provider>> make_openai_provider(const ProviderOptions& o) {
  if (o.base_url.empty())
    return make_error("the openai provider needs a base URL (--base-url, config base_url, "
                      "M1_BASE_URL or OPENAI_BASE_URL)", 2);
  if (o.base_url.rfind("http://", 0) != 0 && o.base_url.rfind("https://", 0) != 0)
    return make_error("base URL '" + o.base_url + "' must start with http:// or https://", 2);
  if (o.model.empty())
    return make_error("the openai provider needs a model name (--model NAME or config model)", 2);
  return std::unique_ptr<Provider>(new OpenAIProvider(o));
}

}  // namespace m1::agent
