// mcp/types.h: JSON-RPC 2.0 and MCP wire types as plain structs and JSON helpers, no I/O.
// Messages stay nlohmann::json on the wire path (the schema is open-ended: `_meta`, unknown
// fields must round-trip); these helpers classify and build them so no code hand-writes
// {"jsonrpc":"2.0",...}. Ids are strings or integers, never null (2025-11-25 has no batching).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace m1::mcp {

using json = nlohmann::json;

// Protocol revisions we speak, newest first; initialize negotiates down this list.
inline const std::vector<std::string>& supported_protocol_versions() {
  static const std::vector<std::string> v = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return v;
}
inline const std::string& latest_protocol_version() { return supported_protocol_versions()[0]; }
bool is_supported_protocol_version(const std::string& v);

// Standard JSON-RPC error codes (and the MCP ones we use).
namespace err {
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kConnectionClosed = -32000;  // MCP SDKs: transport closed
constexpr int kRequestTimeout = -32001;    // MCP SDKs: request timed out
constexpr int kResourceNotFound = -32002;  // MCP: resources/read of an unknown URI
}  // namespace err

// A JSON-RPC error object. Handlers throw it (inside mcp/ only) to answer with an error.
struct RpcError {
  int code = err::kInternalError;
  std::string message;
  json data;  // null = omitted
  json to_json() const;
  static RpcError from_json(const json& j);
  std::string describe() const;  // "MCP error -32601: Method not found"
};

enum class MessageKind { kRequest, kNotification, kResponse, kError, kInvalid };

// Classifies a parsed message; `why` says what is wrong for kInvalid.
MessageKind classify(const json& msg, std::string* why = nullptr);
bool is_valid_id(const json& id);  // string or integer

json make_request(const json& id, const std::string& method, const json& params);
json make_notification(const std::string& method, const json& params);
json make_response(const json& id, const json& result);
json make_error_response(const json& id, const RpcError& e);  // id may be null (parse errors)

// Content helpers (MCP content blocks).
json text_content(const std::string& text);

// Base64 (resources/blob, image/audio content).
std::string base64_encode(const std::string& bytes);

// Implementation info both sides send in initialize.
struct Implementation {
  std::string name;
  std::string version;
  std::string title;  // optional
  json to_json() const;
};

}  // namespace m1::mcp
