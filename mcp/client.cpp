// mcp/client.cpp: MCP client facade (see client.h). Server->client requests are answered on
// worker threads (Session), so a sampling callback may take as long as the model needs.
#include "mcp/client.h"

#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace m1::mcp {

namespace {
Error to_error(const RpcError& e) { return make_error(e.describe()); }
}  // namespace

Result<std::shared_ptr<Client>> Client::connect(std::shared_ptr<Transport> transport, ClientOptions opts) {
  std::shared_ptr<Client> c(new Client());
  c->opts_ = std::move(opts);
  Session::Options so;
  so.request_timeout = c->opts_.request_timeout;
  so.name = "mcp-client";
  c->session_ = Session::create(std::move(transport), so);
  Client* raw = c.get();
  auto& s = *c->session_;
  s.on_request("roots/list", [raw](const json&, RequestContext&) {
    std::lock_guard lk(raw->roots_mu_);
    json roots = json::array();
    for (const auto& r : raw->opts_.roots) roots.push_back(r);
    return json{{"roots", roots}};
  });
  s.on_request("sampling/createMessage", [raw](const json& p, RequestContext&) -> json {
    if (!raw->opts_.sampling)
      throw RpcError{err::kMethodNotFound,
                     "Sampling is not configured in this client (no model provider plugged in)", nullptr};
    if (!p.contains("messages") || !p["messages"].is_array())
      throw RpcError{err::kInvalidParams, "Invalid params: \"messages\" (array) is required", nullptr};
    auto r = raw->opts_.sampling(p);
    if (!r.ok()) throw RpcError{err::kInternalError, "Sampling failed: " + r.error().message, nullptr};
    return r.value();
  });
  s.on_request("elicitation/create", [raw](const json& p, RequestContext&) -> json {
    if (!p.contains("message") || !p["message"].is_string())
      throw RpcError{err::kInvalidParams, "Invalid params: \"message\" (string) is required", nullptr};
    if (!raw->opts_.elicitation) return json{{"action", "decline"}};
    return raw->opts_.elicitation(p);
  });
  s.on_notification("notifications/message", [raw](const json& p) {
    if (raw->opts_.on_log) raw->opts_.on_log(p);
  });
  s.on_notification("notifications/tools/list_changed", [raw](const json&) {
    if (raw->opts_.on_tools_changed) raw->opts_.on_tools_changed();
  });
  s.on_notification("notifications/resources/updated", [raw](const json& p) {
    if (raw->opts_.on_resource_updated) raw->opts_.on_resource_updated(p.value("uri", ""));
  });
  M1_TRY(s.start());
  Status st = c->initialize();
  if (!st.ok()) {
    c->close();
    return st.error();
  }
  return c;
}

Client::~Client() { close(); }

Status Client::initialize() {
  json caps = {{"roots", {{"listChanged", true}}}, {"elicitation", json::object()}};
  if (opts_.sampling) caps["sampling"] = json::object();
  json params = {{"protocolVersion", latest_protocol_version()},
                 {"capabilities", caps},
                 {"clientInfo", opts_.info.to_json()}};
  Reply r = session_->request("initialize", params);
  if (!r.ok()) return make_error("initialize failed: " + r.error->describe());
  const json& res = r.result;
  std::string v = res.value("protocolVersion", "");
  if (!is_supported_protocol_version(v))
    return make_error("server chose protocol version \"" + v + "\", which this client does not support");
  protocol_version_ = v;
  server_info_ = res.value("serverInfo", json::object());
  server_caps_ = res.value("capabilities", json::object());
  instructions_ = res.value("instructions", "");
  session_->transport().set_protocol_version(v);
  return session_->notify("notifications/initialized", json::object());
}

Reply Client::request(const std::string& method, const json& params, RequestOptions opts) {
  return session_->request(method, params, std::move(opts));
}

Result<std::vector<json>> Client::list_all(const std::string& method, const std::string& key) {
  std::vector<json> out;
  json cursor;
  for (int page = 0; page < 10000; ++page) {
    json params = json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    Reply r = session_->request(method, params);
    if (!r.ok()) return to_error(*r.error);
    if (r.result.contains(key) && r.result[key].is_array())
      for (auto& x : r.result[key]) out.push_back(x);
    if (!r.result.contains("nextCursor") || r.result["nextCursor"].is_null()) return out;
    if (r.result["nextCursor"] == cursor) return make_error(method + ": server repeated the same cursor");
    cursor = r.result["nextCursor"];
  }
  return make_error(method + ": too many pages");
}

Result<std::vector<json>> Client::list_tools() { return list_all("tools/list", "tools"); }
Result<std::vector<json>> Client::list_resources() { return list_all("resources/list", "resources"); }
Result<std::vector<json>> Client::list_resource_templates() {
  return list_all("resources/templates/list", "resourceTemplates");
}
Result<std::vector<json>> Client::list_prompts() { return list_all("prompts/list", "prompts"); }

Result<json> Client::call_tool(const std::string& name, const json& args, const CallOptions& o) {
  RequestOptions ro;
  ro.timeout = o.timeout;
  ro.cancel = o.cancel;
  ro.on_progress = o.on_progress;
  Reply r = session_->request("tools/call", {{"name", name}, {"arguments", args}}, ro);
  if (!r.ok()) return to_error(*r.error);
  return r.result;
}

Result<json> Client::read_resource(const std::string& uri) {
  Reply r = session_->request("resources/read", {{"uri", uri}});
  if (!r.ok()) return to_error(*r.error);
  return r.result;
}

Result<json> Client::get_prompt(const std::string& name, const json& args) {
  Reply r = session_->request("prompts/get", {{"name", name}, {"arguments", args}});
  if (!r.ok()) return to_error(*r.error);
  return r.result;
}

Result<json> Client::complete(const json& ref, const json& argument) {
  Reply r = session_->request("completion/complete", {{"ref", ref}, {"argument", argument}});
  if (!r.ok()) return to_error(*r.error);
  return r.result;
}

Status Client::ping() {
  Reply r = session_->request("ping", json::object());
  if (!r.ok()) return to_error(*r.error);
  return {};
}

Status Client::set_log_level(const std::string& level) {
  Reply r = session_->request("logging/setLevel", {{"level", level}});
  if (!r.ok()) return to_error(*r.error);
  return {};
}

Status Client::subscribe(const std::string& uri) {
  Reply r = session_->request("resources/subscribe", {{"uri", uri}});
  if (!r.ok()) return to_error(*r.error);
  return {};
}

Status Client::notify_roots_changed(std::vector<json> roots) {
  {
    std::lock_guard lk(roots_mu_);
    opts_.roots = std::move(roots);
  }
  return session_->notify("notifications/roots/list_changed", json::object());
}

void Client::close() {
  if (session_) session_->close();
}

json defaults_from_schema(const json& schema) {
  json content = json::object();
  if (!schema.is_object() || !schema.contains("properties")) return content;
  for (auto& [name, prop] : schema["properties"].items())
    if (prop.is_object() && prop.contains("default")) content[name] = prop["default"];
  return content;
}

json terminal_elicitation(const json& params) {
  if (!::isatty(0)) return {{"action", "decline"}};
  const json schema = params.value("requestedSchema", json::object());
  std::fprintf(stderr, "\n[MCP server asks] %s\n", params.value("message", "").c_str());
  std::fprintf(stderr, "Answer? [y]es / [n]o (decline) / [c]ancel: ");
  std::string line;
  if (!std::getline(std::cin, line)) return {{"action", "cancel"}};
  if (line == "c" || line == "cancel") return {{"action", "cancel"}};
  if (line != "y" && line != "yes" && line != "") return {{"action", "decline"}};
  json content = defaults_from_schema(schema);
  if (schema.contains("properties"))
    for (auto& [name, prop] : schema["properties"].items()) {
      std::string type = prop.value("type", "string");
      std::string hint = content.contains(name) ? " [" + content[name].dump() + "]" : "";
      std::fprintf(stderr, "  %s (%s)%s: ", name.c_str(), type.c_str(), hint.c_str());
      if (!std::getline(std::cin, line)) return {{"action", "cancel"}};
      if (line.empty()) continue;
      if (type == "integer" || type == "number") {
        json v = json::parse(line, nullptr, false);
        if (v.is_number()) content[name] = v;
      } else if (type == "boolean") {
        content[name] = (line == "y" || line == "yes" || line == "true");
      } else if (type == "array") {
        json arr = json::array();
        size_t pos = 0;
        while (pos <= line.size()) {
          size_t c = line.find(',', pos);
          arr.push_back(line.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
          if (c == std::string::npos) break;
          pos = c + 1;
        }
        content[name] = arr;
      } else {
        content[name] = line;
      }
    }
  return {{"action", "accept"}, {"content", content}};
}

}  // namespace m1::mcp
