// mcp/types.cpp: JSON-RPC message classification and builders (see types.h).
#include "mcp/types.h"

#include <algorithm>

namespace m1::mcp {

bool is_supported_protocol_version(const std::string& v) {
  const auto& all = supported_protocol_versions();
  return std::find(all.begin(), all.end(), v) != all.end();
}

json RpcError::to_json() const {
  json j = {{"code", code}, {"message", message}};
  if (!data.is_null()) j["data"] = data;
  return j;
}

RpcError RpcError::from_json(const json& j) {
  RpcError e;
  if (j.is_object()) {
    e.code = j.value("code", err::kInternalError);
    if (j.contains("message") && j["message"].is_string()) e.message = j["message"];
    if (j.contains("data")) e.data = j["data"];
  }
  return e;
}

std::string RpcError::describe() const {
  return "MCP error " + std::to_string(code) + ": " + message;
}

bool is_valid_id(const json& id) { return id.is_string() || id.is_number_integer(); }

MessageKind classify(const json& msg, std::string* why) {
  auto bad = [&](const char* w) {
    if (why) *why = w;
    return MessageKind::kInvalid;
  };
  if (msg.is_array()) return bad("batches are not supported in this protocol revision");
  if (!msg.is_object()) return bad("a JSON-RPC message must be a JSON object");
  auto v = msg.find("jsonrpc");
  if (v == msg.end() || *v != "2.0") return bad("\"jsonrpc\" must be \"2.0\"");
  bool has_id = msg.contains("id");
  if (msg.contains("method")) {
    if (!msg["method"].is_string()) return bad("\"method\" must be a string");
    if (msg.contains("params") && !msg["params"].is_object() && !msg["params"].is_null())
      return bad("\"params\" must be an object");
    if (!has_id) return MessageKind::kNotification;
    if (!is_valid_id(msg["id"])) return bad("\"id\" must be a string or an integer");
    return MessageKind::kRequest;
  }
  if (msg.contains("result")) {
    if (!has_id || !is_valid_id(msg["id"])) return bad("a response needs a string or integer id");
    return MessageKind::kResponse;
  }
  if (msg.contains("error")) {
    if (!msg["error"].is_object()) return bad("\"error\" must be an object");
    return MessageKind::kError;  // id may be null for parse errors
  }
  return bad("neither a request, a notification nor a response");
}

json make_request(const json& id, const std::string& method, const json& params) {
  json j = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) j["params"] = params;
  return j;
}

json make_notification(const std::string& method, const json& params) {
  json j = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) j["params"] = params;
  return j;
}

json make_response(const json& id, const json& result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", result.is_null() ? json::object() : result}};
}

json make_error_response(const json& id, const RpcError& e) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", e.to_json()}};
}

json text_content(const std::string& text) { return {{"type", "text"}, {"text", text}}; }

std::string base64_encode(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned n = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += tbl[n >> 18 & 63];
    out += tbl[n >> 12 & 63];
    out += tbl[n >> 6 & 63];
    out += tbl[n & 63];
  }
  if (i + 1 == in.size()) {
    unsigned n = (unsigned char)in[i] << 16;
    out += tbl[n >> 18 & 63];
    out += tbl[n >> 12 & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned n = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += tbl[n >> 18 & 63];
    out += tbl[n >> 12 & 63];
    out += tbl[n >> 6 & 63];
    out += '=';
  }
  return out;
}

json Implementation::to_json() const {
  json j = {{"name", name}, {"version", version}};
  if (!title.empty()) j["title"] = title;
  return j;
}

}  // namespace m1::mcp
