// tools/registry.cpp: ToolResult helpers, the Registry, and the JSON Schema subset validator.
// The validator reports the first problem with its JSON path ("arguments.path: expected string"),
// because that message goes straight back to the model and must say exactly what to fix.
#include <algorithm>
#include <sstream>

#include "tools/tool.h"

namespace m1::tools {

std::string ToolResult::text() const {
  std::string out;
  for (const auto& block : content) {
    if (block.is_object() && block.value("type", "") == "text") {
      if (!out.empty()) out += "\n";
      out += block.value("text", "");
    }
  }
  return out;
}

ToolResult ToolResult::ok_text(std::string text) {
  ToolResult r;
  r.content.push_back({{"type", "text"}, {"text", std::move(text)}});
  return r;
}

ToolResult ToolResult::error_text(std::string text) {
  ToolResult r = ok_text(std::move(text));
  r.is_error = true;
  return r;
}

void Registry::add(std::shared_ptr<Tool> tool) {
  remove(tool->spec().name);
  tools_.push_back(std::move(tool));
}

void Registry::remove(const std::string& name) {
  tools_.erase(std::remove_if(tools_.begin(), tools_.end(),
                              [&](const auto& t) { return t->spec().name == name; }),
               tools_.end());
}

std::shared_ptr<Tool> Registry::find(const std::string& name) const {
  for (const auto& t : tools_)
    if (t->spec().name == name) return t;
  return nullptr;
}

std::vector<ToolSpec> Registry::list() const {
  std::vector<ToolSpec> out;
  for (const auto& t : tools_) out.push_back(t->spec());
  return out;
}

ToolResult Registry::call(const std::string& name, const nlohmann::json& args,
                          ToolContext& ctx) const {
  auto tool = find(name);
  if (!tool) {
    std::string names;
    for (const auto& t : tools_) names += (names.empty() ? "" : ", ") + t->spec().name;
    return ToolResult::error_text("unknown tool '" + name + "'; available tools: " + names);
  }
  std::string problem = validate_json_schema(tool->spec().input_schema, args);
  if (!problem.empty())
    return ToolResult::error_text("invalid arguments for tool '" + name + "': " + problem);
  try {
    return tool->call(args, ctx);
  } catch (const std::exception& e) {
    // A tool bug must not take the loop down; the model sees it as a failed call.
    return ToolResult::error_text("tool '" + name + "' failed: " + e.what());
  }
}

namespace {

std::string type_name(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

bool matches_type(const std::string& t, const nlohmann::json& v) {
  if (t == "integer") {
    if (v.is_number_integer() || v.is_number_unsigned()) return true;
    return v.is_number_float() && v.get<double>() == static_cast<double>(v.get<long long>());
  }
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "array") return v.is_array();
  if (t == "object") return v.is_object();
  if (t == "null") return v.is_null();
  return true;  // unknown type keyword: do not reject what we cannot judge
}

std::string check_type(const nlohmann::json& schema, const nlohmann::json& v,
                       const std::string& path) {
  if (!schema.contains("type")) return "";
  const auto& t = schema["type"];
  if (t.is_string()) {
    if (!matches_type(t.get<std::string>(), v))
      return path + ": expected " + t.get<std::string>() + ", got " + type_name(v);
  } else if (t.is_array()) {
    for (const auto& one : t)
      if (one.is_string() && matches_type(one.get<std::string>(), v)) return "";
    return path + ": expected one of " + t.dump() + ", got " + type_name(v);
  }
  return "";
}

std::string check_object(const nlohmann::json& schema, const nlohmann::json& v,
                         const std::string& path) {
  if (schema.contains("required") && schema["required"].is_array()) {
    for (const auto& r : schema["required"])
      if (r.is_string() && !v.contains(r.get<std::string>()))
        return path + ": missing required property '" + r.get<std::string>() + "'";
  }
  const nlohmann::json props =
      schema.contains("properties") ? schema["properties"] : nlohmann::json::object();
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string sub = path + "." + it.key();
    if (props.contains(it.key())) {
      std::string p = validate_json_schema(props[it.key()], it.value(), sub);
      if (!p.empty()) return p;
    } else if (schema.contains("additionalProperties")) {
      const auto& ap = schema["additionalProperties"];
      if (ap.is_boolean() && !ap.get<bool>()) {
        std::string allowed;
        for (auto p = props.begin(); p != props.end(); ++p)
          allowed += (allowed.empty() ? "" : ", ") + p.key();
        return path + ": unexpected property '" + it.key() + "' (allowed: " + allowed + ")";
      }
      if (ap.is_object()) {
        std::string p = validate_json_schema(ap, it.value(), sub);
        if (!p.empty()) return p;
      }
    }
  }
  return "";
}

std::string check_bounds(const nlohmann::json& schema, const nlohmann::json& v,
                         const std::string& path) {
  if (v.is_number()) {
    double d = v.get<double>();
    if (schema.contains("minimum") && d < schema["minimum"].get<double>())
      return path + ": must be >= " + schema["minimum"].dump() + ", got " + v.dump();
    if (schema.contains("maximum") && d > schema["maximum"].get<double>())
      return path + ": must be <= " + schema["maximum"].dump() + ", got " + v.dump();
  }
  if (v.is_string()) {
    size_t n = v.get_ref<const std::string&>().size();
    if (schema.contains("minLength") && n < schema["minLength"].get<size_t>())
      return path + ": must be at least " + schema["minLength"].dump() + " characters";
    if (schema.contains("maxLength") && n > schema["maxLength"].get<size_t>())
      return path + ": must be at most " + schema["maxLength"].dump() + " characters";
  }
  if (v.is_array()) {
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>())
      return path + ": must have at least " + schema["minItems"].dump() + " items";
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>())
      return path + ": must have at most " + schema["maxItems"].dump() + " items";
  }
  return "";
}

}  // namespace

std::string validate_json_schema(const nlohmann::json& schema, const nlohmann::json& value,
                                 const std::string& path) {
  if (!schema.is_object()) return "";
  std::string p = check_type(schema, value, path);
  if (!p.empty()) return p;
  if (schema.contains("enum") && schema["enum"].is_array()) {
    bool found = false;
    for (const auto& e : schema["enum"]) found = found || e == value;
    if (!found) return path + ": must be one of " + schema["enum"].dump() + ", got " + value.dump();
  }
  p = check_bounds(schema, value, path);
  if (!p.empty()) return p;
  if (value.is_object()) return check_object(schema, value, path);
  if (value.is_array() && schema.contains("items") && schema["items"].is_object()) {
    for (size_t i = 0; i < value.size(); ++i) {
      p = validate_json_schema(schema["items"], value[i], path + "[" + std::to_string(i) + "]");
      if (!p.empty()) return p;
    }
  }
  return "";
}

}  // namespace m1::tools
