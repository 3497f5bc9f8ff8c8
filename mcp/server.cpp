// mcp/server.cpp: MCP server methods over a Session (see server.h). Capabilities are derived
// from what is registered, so a method is only advertised when something can answer it.
// Pagination cursors are opaque decimal offsets; a cursor we did not issue is -32602.
#include "mcp/server.h"

#include <algorithm>
#include <cctype>

#include <spdlog/spdlog.h>

namespace m1::mcp {

namespace {
const std::vector<std::string> kLevels = {"debug",    "info",  "notice", "warning",
                                          "error",    "critical", "alert", "emergency"};

RpcError invalid_params(const std::string& msg) { return RpcError{err::kInvalidParams, msg, nullptr}; }

// One page of `items` starting at params.cursor; adds nextCursor when more remain.
json paginate(const std::vector<json>& items, const json& params, size_t page,
              const char* key) {
  size_t start = 0;
  if (params.contains("cursor") && !params["cursor"].is_null()) {
    const json& c = params["cursor"];
    std::string text = c.is_string() ? c.get<std::string>() : "";
    bool ok = !text.empty() && text.size() < 12 &&
              std::all_of(text.begin(), text.end(), [](unsigned char ch) { return std::isdigit(ch); });
    if (ok) start = std::stoul(text);
    if (!ok || start > items.size()) throw invalid_params("Invalid cursor: " + c.dump());
  }
  size_t end = std::min(items.size(), start + page);
  json out = {{key, json::array()}};
  for (size_t i = start; i < end; ++i) out[key].push_back(items[i]);
  if (end < items.size()) out["nextCursor"] = std::to_string(end);
  return out;
}

json spec_to_json(const tools::ToolSpec& s) {
  json t = {{"name", s.name},
            {"description", s.description},
            {"inputSchema", s.input_schema.is_object() ? s.input_schema : json{{"type", "object"}}}};
  if (!s.title.empty()) t["title"] = s.title;
  if (s.output_schema) t["outputSchema"] = *s.output_schema;
  json ann = s.annotations.is_object() ? s.annotations : json::object();
  if (s.read_only && !ann.contains("readOnlyHint")) ann["readOnlyHint"] = true;
  if (!ann.empty()) t["annotations"] = ann;
  return t;
}

json result_to_json(const tools::ToolResult& r) {
  json out = {{"content", json::array()}};
  for (const auto& b : r.content) out["content"].push_back(b);
  if (r.structured) out["structuredContent"] = *r.structured;
  if (r.is_error) out["isError"] = true;
  return out;
}

std::string require_string(const json& params, const char* key) {
  if (!params.contains(key) || !params[key].is_string())
    throw invalid_params(std::string("Invalid params: \"") + key + "\" (string) is required");
  return params[key];
}
}  // namespace

int log_level_rank(const std::string& level) {
  auto it = std::find(kLevels.begin(), kLevels.end(), level);
  return it == kLevels.end() ? -1 : static_cast<int>(it - kLevels.begin());
}

// ---- Server ------------------------------------------------------------------------------

Server::Server(ServerOptions opts, std::shared_ptr<tools::Registry> registry)
    : opts_(std::move(opts)), registry_(std::move(registry)) {
  if (!registry_) registry_ = std::make_shared<tools::Registry>();
}

void Server::add_native_tool(NativeTool tool) {
  std::lock_guard lk(mu_);
  native_.push_back(std::move(tool));
}
void Server::add_resource_provider(std::shared_ptr<ResourceProvider> p) {
  std::lock_guard lk(mu_);
  resources_.push_back(std::move(p));
}
void Server::add_prompt_provider(std::shared_ptr<PromptProvider> p) {
  std::lock_guard lk(mu_);
  prompts_.push_back(std::move(p));
}

std::shared_ptr<ServerConnection> Server::connect(std::shared_ptr<Transport> transport) {
  auto conn = std::make_shared<ServerConnection>(shared_from_this(), std::move(transport));
  {
    std::lock_guard lk(mu_);
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                      [](const auto& w) { return w.expired(); }),
                       connections_.end());
    connections_.push_back(conn);
  }
  (void)conn->session().start();
  return conn;
}

std::vector<std::weak_ptr<ServerConnection>> Server::live_connections() {
  std::lock_guard lk(mu_);
  return connections_;
}

void Server::notify_resource_updated(const std::string& uri) {
  for (auto& w : live_connections())
    if (auto c = w.lock(); c && c->subscribed(uri))
      (void)c->session().notify("notifications/resources/updated", {{"uri", uri}});
}

void Server::notify_tools_changed() {
  for (auto& w : live_connections())
    if (auto c = w.lock(); c && c->initialized())
      (void)c->session().notify("notifications/tools/list_changed", json::object());
}

std::vector<json> Server::tool_list() const {
  std::vector<json> out;
  std::lock_guard lk(mu_);
  for (const auto& t : native_) out.push_back(spec_to_json(t.spec));
  for (const auto& s : registry_->list()) out.push_back(spec_to_json(s));
  return out;
}

json Server::call_tool(const std::string& name, const json& args, ToolCall& call) {
  std::function<json(const json&, ToolCall&)> native;
  {
    std::lock_guard lk(mu_);
    for (const auto& t : native_)
      if (t.spec.name == name) native = t.fn;
  }
  if (native) return native(args, call);
  if (!registry_->find(name)) throw invalid_params("Unknown tool: " + name);
  tools::ToolContext ctx;
  ctx.workspace = opts_.workspace;
  ctx.cancel = &call.rpc.cancelled;
  ctx.settings = opts_.tool_settings;
  RequestContext* rpc = &call.rpc;
  ctx.progress = [rpc](double p, std::optional<double> total, std::string msg) {
    rpc->progress(p, total, msg);
  };
  return result_to_json(registry_->call(name, args, ctx));
}

// ---- ServerConnection --------------------------------------------------------------------

ServerConnection::ServerConnection(std::shared_ptr<Server> server, std::shared_ptr<Transport> transport)
    : server_(std::move(server)) {
  Session::Options so;
  so.request_timeout = server_->opts_.request_timeout;
  so.name = "mcp-server";
  session_ = Session::create(std::move(transport), so);
  install_handlers();
}

void ServerConnection::close() { session_->close(); }

bool ServerConnection::client_has(const std::string& capability) const {
  std::lock_guard lk(mu_);
  return client_capabilities_.contains(capability);
}
std::string ServerConnection::protocol_version() const {
  std::lock_guard lk(mu_);
  return protocol_version_;
}
bool ServerConnection::initialized() const {
  std::lock_guard lk(mu_);
  return init_requested_;
}
bool ServerConnection::subscribed(const std::string& uri) const {
  std::lock_guard lk(mu_);
  return subscriptions_.count(uri) > 0;
}

void ServerConnection::log(const std::string& level, const json& data, const json& related,
                           const std::string& logger) {
  int rank = log_level_rank(level);
  {
    std::lock_guard lk(mu_);
    if (rank < log_threshold_) return;
  }
  json params = {{"level", level}, {"data", data}};
  if (!logger.empty()) params["logger"] = logger;
  (void)session_->notify("notifications/message", params, related);
}

json ServerConnection::handle_initialize(const json& params) {
  auto refuse = [&](const std::string& why) {
    std::lock_guard lk(mu_);
    init_requested_ = false;  // a malformed initialize does not count; the client may retry
    return invalid_params(why);
  };
  if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string())
    throw refuse("Invalid params: \"protocolVersion\" (string) is required");
  std::string requested = params["protocolVersion"];
  if (params.contains("capabilities") && !params["capabilities"].is_object())
    throw refuse("Invalid params: \"capabilities\" must be an object");
  std::lock_guard lk(mu_);
  protocol_version_ = is_supported_protocol_version(requested) ? requested : latest_protocol_version();
  client_capabilities_ = params.value("capabilities", json::object());
  client_info_ = params.value("clientInfo", json::object());
  json caps = {{"tools", {{"listChanged", true}}}, {"logging", json::object()},
               {"completions", json::object()}};
  {
    std::lock_guard slk(server_->mu_);
    if (!server_->resources_.empty()) caps["resources"] = {{"subscribe", true}, {"listChanged", true}};
    if (!server_->prompts_.empty()) caps["prompts"] = {{"listChanged", true}};
  }
  json out = {{"protocolVersion", protocol_version_},
              {"capabilities", caps},
              {"serverInfo", server_->opts_.info.to_json()}};
  if (!server_->opts_.instructions.empty()) out["instructions"] = server_->opts_.instructions;
  return out;
}

void ServerConnection::install_handlers() {
  std::weak_ptr<ServerConnection> weak = weak_from_this();
  auto& s = *session_;
  Server* srv = server_.get();
  // `this` outlives its session's handlers: the session is owned by this connection and the
  // handlers only run while a request is in flight on it.
  // The gate runs on the reader thread in arrival order, so a request sent right behind
  // initialize (before its handler ran on a worker) is already let through.
  s.set_gate([this](const std::string& method) -> std::optional<RpcError> {
    std::lock_guard lk(mu_);
    if (method == "initialize") {
      if (init_requested_) return RpcError{err::kInvalidRequest, "Invalid Request: already initialized", nullptr};
      init_requested_ = true;
      return std::nullopt;
    }
    if (!init_requested_)
      return RpcError{err::kInvalidRequest, "Invalid Request: server not initialized (send initialize first)", nullptr};
    return std::nullopt;
  });
  s.on_request("initialize", [this](const json& p, RequestContext&) { return handle_initialize(p); });
  s.on_notification("notifications/initialized", [this](const json&) {
    std::lock_guard lk(mu_);
    initialized_ = true;
  });
  s.on_notification("notifications/roots/list_changed", [](const json&) {});
  s.on_request("logging/setLevel", [this](const json& p, RequestContext&) {
    std::string level = require_string(p, "level");
    int rank = log_level_rank(level);
    if (rank < 0) throw invalid_params("Invalid params: unknown log level \"" + level + "\"");
    std::lock_guard lk(mu_);
    log_threshold_ = rank;
    return json::object();
  });
  s.on_request("tools/list", [srv](const json& p, RequestContext&) {
    return paginate(srv->tool_list(), p, srv->opts_.page_size, "tools");
  });
  s.on_request("tools/call", [this, srv](const json& p, RequestContext& rpc) {
    std::string name = require_string(p, "name");
    json args = p.contains("arguments") && !p["arguments"].is_null() ? p["arguments"] : json::object();
    if (!args.is_object()) throw invalid_params("Invalid params: \"arguments\" must be an object");
    ToolCall call{rpc, *this};
    return srv->call_tool(name, args, call);
  });
  s.on_request("resources/list", [srv](const json& p, RequestContext&) {
    std::vector<json> all;
    std::lock_guard lk(srv->mu_);
    for (auto& r : srv->resources_)
      for (auto& x : r->resources()) all.push_back(x);
    return paginate(all, p, srv->opts_.page_size, "resources");
  });
  s.on_request("resources/templates/list", [srv](const json& p, RequestContext&) {
    std::vector<json> all;
    std::lock_guard lk(srv->mu_);
    for (auto& r : srv->resources_)
      for (auto& x : r->templates()) all.push_back(x);
    return paginate(all, p, srv->opts_.page_size, "resourceTemplates");
  });
  s.on_request("resources/read", [srv](const json& p, RequestContext&) {
    std::string uri = require_string(p, "uri");
    std::vector<std::shared_ptr<ResourceProvider>> providers;
    {
      std::lock_guard lk(srv->mu_);
      providers = srv->resources_;
    }
    for (auto& r : providers)
      if (auto got = r->read(uri)) return *got;
    throw RpcError{err::kResourceNotFound, "Resource not found: " + uri, {{"uri", uri}}};
  });
  s.on_request("resources/subscribe", [this](const json& p, RequestContext&) {
    std::string uri = require_string(p, "uri");
    std::lock_guard lk(mu_);
    subscriptions_.insert(uri);
    return json::object();
  });
  s.on_request("resources/unsubscribe", [this](const json& p, RequestContext&) {
    std::string uri = require_string(p, "uri");
    std::lock_guard lk(mu_);
    subscriptions_.erase(uri);
    return json::object();
  });
  s.on_request("prompts/list", [srv](const json& p, RequestContext&) {
    std::vector<json> all;
    std::lock_guard lk(srv->mu_);
    for (auto& r : srv->prompts_)
      for (auto& x : r->prompts()) all.push_back(x);
    return paginate(all, p, srv->opts_.page_size, "prompts");
  });
  s.on_request("prompts/get", [srv](const json& p, RequestContext&) {
    std::string name = require_string(p, "name");
    json args = p.contains("arguments") && !p["arguments"].is_null() ? p["arguments"] : json::object();
    if (!args.is_object()) throw invalid_params("Invalid params: \"arguments\" must be an object");
    std::vector<std::shared_ptr<PromptProvider>> providers;
    {
      std::lock_guard lk(srv->mu_);
      providers = srv->prompts_;
    }
    for (auto& r : providers)
      if (auto got = r->get(name, args)) return *got;
    throw invalid_params("Unknown prompt: " + name);
  });
  s.on_request("completion/complete", [srv](const json& p, RequestContext&) {
    if (!p.contains("ref") || !p["ref"].is_object() || !p["ref"].contains("type"))
      throw invalid_params("Invalid params: \"ref\" with a \"type\" is required");
    if (!p.contains("argument") || !p["argument"].is_object() || !p["argument"].contains("name"))
      throw invalid_params("Invalid params: \"argument\" with a \"name\" is required");
    std::vector<std::shared_ptr<PromptProvider>> prompts;
    std::vector<std::shared_ptr<ResourceProvider>> resources;
    {
      std::lock_guard lk(srv->mu_);
      prompts = srv->prompts_;
      resources = srv->resources_;
    }
    std::optional<json> values;
    if (p["ref"]["type"] == "ref/prompt") {
      for (auto& r : prompts)
        if (!values) values = r->complete(p["ref"], p["argument"]);
    } else {
      for (auto& r : resources)
        if (!values) values = r->complete(p["ref"], p["argument"]);
    }
    json v = values.value_or(json::array());
    return json{{"completion", {{"values", v}, {"total", v.size()}, {"hasMore", false}}}};
  });
  (void)weak;
}

}  // namespace m1::mcp
