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
// The memory and agent modules are linked into `m1` whenever they are part of the build.
#if __has_include("memory/store.h")
#define M1_SERVE_SESSIONS 1
#include "memory/store.h"
#endif
#if __has_include("agent/fix.h")
#define M1_SERVE_RUN_TASK 1
#include "agent/fix.h"
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

// Prompts for common tasks; the texts tell the model which tools to reach for.
class TaskPrompts : public mcp::PromptProvider {
 public:
  std::vector<nlohmann::json> prompts() override {
    return {{{"name", "fix_bug"},
             {"description", "Fix a bug in the workspace, test it, and report a minimal patch"},
             {"arguments", {{{"name", "problem"}, {"description", "What is wrong (issue text)"}, {"required", true}},
                            {{"name", "path"}, {"description", "Where to start looking"}, {"required", false}}}}},
            {{"name", "review_patch"},
             {"description", "Review a unified diff for bugs and missing tests"},
             {"arguments", {{{"name", "patch"}, {"description", "The diff"}, {"required", true}}}}}};
  }
  std::optional<nlohmann::json> get(const std::string& name, const nlohmann::json& args) override {
    auto arg = [&](const char* k, bool required) {
      if (args.contains(k) && args[k].is_string()) return args[k].get<std::string>();
      if (required)
        throw mcp::RpcError{mcp::err::kInvalidParams, std::string("Missing required argument: ") + k, nullptr};
      return std::string();
    };
    auto user = [](const std::string& text) {
      return nlohmann::json{{"messages", {{{"role", "user"}, {"content", mcp::text_content(text)}}}}};
    };
    if (name == "fix_bug") {
      std::string problem = arg("problem", true), path = arg("path", false);
      return user("Fix this bug in the workspace" + (path.empty() ? "" : " (start at " + path + ")") + ":\n\n" +
                  problem + "\n\nReproduce it first (shell), read the relevant code (search, view), make the "
                  "smallest change that fixes it (str_replace / apply_patch), run the tests, and end with the patch.");
    }
    if (name == "review_patch")
      return user("Review this patch. List real bugs first (with the line), then missing tests, then style "
                  "nits; say \"no issues\" if there are none.\n\n" + arg("patch", true));
    return std::nullopt;
  }
};

#ifdef M1_SERVE_SESSIONS
// Stored agent sessions as resources: m1://sessions/<id> (record) and .../transcript (messages).
// The store is opened per request (WAL allows readers beside a running agent) and only if it exists.
class SessionResources : public mcp::ResourceProvider {
 public:
  explicit SessionResources(std::filesystem::path db) : db_(std::move(db)) {}
  std::vector<nlohmann::json> resources() override {
    std::vector<nlohmann::json> out;
    auto store = open();
    if (!store) return out;
    auto list = store->list_sessions(100);
    if (!list.ok()) return out;
    for (auto& s : list.value()) {
      std::string task = s.task.substr(0, s.task.find('\n')).substr(0, 120);
      out.push_back({{"uri", "m1://sessions/" + s.id}, {"name", "session " + s.id},
                     {"description", s.kind + " (" + s.status + "): " + task}, {"mimeType", "application/json"}});
    }
    return out;
  }
  std::vector<nlohmann::json> templates() override {
    return {{{"uriTemplate", "m1://sessions/{id}"}, {"name", "Agent session"},
             {"description", "A stored agent session record"}, {"mimeType", "application/json"}},
            {{"uriTemplate", "m1://sessions/{id}/transcript"}, {"name", "Agent session transcript"},
             {"description", "The messages of a stored agent session"}, {"mimeType", "application/json"}}};
  }
  std::optional<nlohmann::json> read(const std::string& uri) override {
    const std::string pre = "m1://sessions/";
    if (uri.rfind(pre, 0) != 0) return std::nullopt;
    std::string id = uri.substr(pre.size());
    bool transcript = id.size() > 11 && id.compare(id.size() - 11, 11, "/transcript") == 0;
    if (transcript) id = id.substr(0, id.size() - 11);
    auto store = open();
    if (!store) return std::nullopt;
    auto info = store->get_session(id);
    if (!info.ok()) return std::nullopt;
    nlohmann::json body;
    if (transcript) {
      auto msgs = store->messages(info.value().id);
      if (!msgs.ok()) throw mcp::RpcError{mcp::err::kInternalError, msgs.error().message, nullptr};
      body = nlohmann::json::array();
      for (auto& m : msgs.value()) body.push_back({{"seq", m.seq}, {"role", m.role}, {"content", m.content}});
    } else {
      const auto& s = info.value();
      body = {{"id", s.id}, {"kind", s.kind}, {"repo", s.repo}, {"task", s.task}, {"status", s.status},
              {"stop_reason", s.stop_reason}, {"steps", s.steps}, {"created_at", s.created_at},
              {"updated_at", s.updated_at}, {"meta", s.meta}};
    }
    return nlohmann::json{{"contents", {{{"uri", uri}, {"mimeType", "application/json"}, {"text", body.dump(2)}}}}};
  }

 private:
  std::unique_ptr<memory::Store> open() {
    std::error_code ec;
    if (!std::filesystem::exists(db_, ec)) return nullptr;
    auto s = memory::Store::open(db_);
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  std::filesystem::path db_;
};
#endif

#ifdef M1_SERVE_RUN_TASK
// Forwards agent events to the MCP caller: a progress notification per model turn, a log line
// per tool call.
class McpProgressSink : public agent::EventSink {
 public:
  McpProgressSink(mcp::ToolCall& call, int max_steps) : call_(call), max_(max_steps) {}
  void event(const agent::Event& e) override {
    if (e.type == "turn_start") call_.rpc.progress(++steps_, max_, "step " + std::to_string(steps_));
    else if (e.type == "tool_call") call_.conn.log("info", e.data, call_.rpc.id, "run_task");
  }

 private:
  mcp::ToolCall& call_;
  int max_;
  int steps_ = 0;
};

mcp::NativeTool run_task_tool(std::filesystem::path workspace) {
  tools::ToolSpec spec;
  spec.name = "run_task";
  spec.title = "Run a bug-fix task with the m1 agent";
  spec.description = "Runs the m1 agent loop on a repository inside the workspace (in its own git worktree) "
                     "until it submits a fix or hits a budget. Reports progress per step; cancellable. "
                     "Returns the summary and the patch.";
  spec.input_schema = {{"type", "object"},
                       {"properties", {{"task", {{"type", "string"}, {"description", "The problem statement"}}},
                                       {"repo", {{"type", "string"}, {"description", "Repository path relative to the workspace (default .)"}}},
                                       {"max_steps", {{"type", "integer"}, {"minimum", 1}, {"maximum", 500}}}}},
                       {"required", {"task"}}};
  spec.output_schema = nlohmann::json{
      {"type", "object"},
      {"properties", {{"session_id", {{"type", "string"}}}, {"stop_reason", {{"type", "string"}}},
                      {"summary", {{"type", "string"}}}, {"patch", {{"type", "string"}}}}},
      {"required", {"session_id", "stop_reason", "patch"}}};
  return {spec, [workspace](const nlohmann::json& args, mcp::ToolCall& call) -> nlohmann::json {
    auto err = [](const std::string& m) {
      return nlohmann::json{{"content", {mcp::text_content(m)}}, {"isError", true}};
    };
    if (!args.contains("task") || !args["task"].is_string() || args["task"].get<std::string>().empty())
      return err("run_task: \"task\" (non-empty string) is required");
    std::error_code ec;
    auto repo = std::filesystem::weakly_canonical(workspace / args.value("repo", "."), ec);
    auto rel = repo.lexically_relative(workspace);
    if (ec || rel.empty() || *rel.begin() == ".." || !std::filesystem::is_directory(repo))
      return err("run_task: repo must be a directory inside the workspace " + workspace.string());
    auto cfg = agent::load_config(repo);
    if (!cfg.ok()) return err("run_task: " + cfg.error().message);
    if (args.contains("max_steps") && args["max_steps"].is_number_integer())
      cfg.value().budgets.max_steps = args["max_steps"];
    auto log = agent::open_session_log();
    if (!log.ok()) return err("run_task: " + log.error().message);
    agent::FixRequest req;
    req.repo = repo;
    req.problem_statement = args["task"];
    req.kind = "mcp";
    req.config = cfg.value();
    McpProgressSink sink(call, req.config.budgets.max_steps);
    auto out = agent::run_fix(req, *log.value(), &sink, &call.rpc.cancelled);
    if (!out.ok()) return err("run_task: " + out.error().message);
    const auto& o = out.value();
    std::string reason = agent::stop_reason_name(o.result.reason);
    nlohmann::json structured = {{"session_id", o.session_id}, {"stop_reason", reason},
                                 {"summary", o.result.summary}, {"patch", o.patch}};
    std::string text = "session " + o.session_id + " stopped: " + reason +
                       (o.result.detail.empty() ? "" : " (" + o.result.detail + ")") + "\n" + o.result.summary +
                       "\n\n" + (o.patch.empty() ? "(no changes)" : o.patch);
    return nlohmann::json{{"content", {mcp::text_content(text)}}, {"structuredContent", structured},
                          {"isError", o.result.reason == agent::StopReason::Error}};
  }};
}
#endif

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
  if (a.conformance) {
    mcp::add_conformance_fixtures(*server);
  } else {
    server->add_prompt_provider(std::make_shared<TaskPrompts>());
#ifdef M1_SERVE_SESSIONS
    server->add_resource_provider(std::make_shared<SessionResources>(memory::Store::default_path()));
#endif
#ifdef M1_SERVE_RUN_TASK
    if (!a.no_builtin) server->add_native_tool(run_task_tool(ws));
#endif
  }

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
