// tools: the Tool interface and the Registry the agent loop and the MCP server share.
// Built-in tools (shell, view, str_replace, create, apply_patch, search, list) and MCP-provided
// tools (named `server__tool`) are both Tools; the registry validates arguments against each
// tool's JSON Schema before calling it, so a bad call becomes a precise error for the model.
#pragma once
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace m1::tools {

struct ToolSpec {
  std::string name;
  std::string title;
  std::string description;
  nlohmann::json input_schema;                   // JSON Schema (object)
  std::optional<nlohmann::json> output_schema;   // for structuredContent
  bool read_only = false;                        // read-only calls of one turn may run in parallel
  nlohmann::json annotations = nlohmann::json::object();  // MCP tool annotations
};

// One content block of a result, MCP-shaped: {"type":"text","text":...}, image, resource, ...
using ContentBlock = nlohmann::json;

struct ToolResult {
  std::vector<ContentBlock> content;
  std::optional<nlohmann::json> structured;
  bool is_error = false;
  // Convenience: all text blocks joined (what a model sees).
  std::string text() const;
  static ToolResult ok_text(std::string text);
  static ToolResult error_text(std::string text);
};

// What a call may use: the workspace, cancellation, progress reporting.
struct ToolContext {
  std::filesystem::path workspace;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(double progress, std::optional<double> total, std::string message)> progress;
  nlohmann::json settings = nlohmann::json::object();  // sandbox policy etc., set by the caller
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual const ToolSpec& spec() const = 0;
  // Arguments already validated against spec().input_schema by the Registry.
  virtual ToolResult call(const nlohmann::json& args, ToolContext& ctx) = 0;
};

class Registry {
 public:
  void add(std::shared_ptr<Tool> tool);           // replaces a tool of the same name
  void remove(const std::string& name);
  std::shared_ptr<Tool> find(const std::string& name) const;
  std::vector<ToolSpec> list() const;
  // Unknown tool or invalid arguments -> an is_error result naming the problem (never throws).
  ToolResult call(const std::string& name, const nlohmann::json& args, ToolContext& ctx) const;

 private:
  std::vector<std::shared_ptr<Tool>> tools_;
};

// Validates `value` against a JSON Schema (the subset tools use: type, properties, required,
// items, enum, minimum/maximum, minLength/maxLength, additionalProperties). Empty string = valid.
std::string validate_json_schema(const nlohmann::json& schema, const nlohmann::json& value,
                                 const std::string& path = "arguments");

}  // namespace m1::tools
