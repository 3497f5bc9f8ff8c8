// agent/config.cpp: reading and merging config files; every error names the file and field.
#include "agent/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::agent {

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
fs::path home_dir() {
  std::string h = env("HOME");
  return h.empty() ? fs::path("/tmp") : fs::path(h);
}
Status want(const json& j, const char* key, json::value_t t, const char* tname, const std::string& origin) {
  if (!j.contains(key)) return {};
  bool ok = j[key].type() == t ||
            (t == json::value_t::number_float && j[key].is_number());
  if (!ok) return make_error(origin + ": field '" + key + "' must be " + tname + ", got " + j[key].dump(), 2);
  return {};
}
}  // namespace

fs::path user_config_dir() {
  if (!env("M1_CONFIG_DIR").empty()) return env("M1_CONFIG_DIR");
  if (!env("XDG_CONFIG_HOME").empty()) return fs::path(env("XDG_CONFIG_HOME")) / "m1";
  return home_dir() / ".config" / "m1";
}

fs::path state_dir() {
  if (!env("M1_STATE_DIR").empty()) return env("M1_STATE_DIR");
  if (!env("XDG_STATE_HOME").empty()) return fs::path(env("XDG_STATE_HOME")) / "m1";
  return home_dir() / ".local" / "state" / "m1";
}

Status validate_mcp_servers(const json& servers, const std::string& origin) {
  if (!servers.is_object())
    return make_error(origin + ": 'mcpServers' must be an object of server name -> settings", 2);
  for (auto it = servers.begin(); it != servers.end(); ++it) {
    std::string where = origin + ": mcpServers." + it.key();
    const json& s = it.value();
    if (!s.is_object()) return make_error(where + " must be an object", 2);
    bool cmd = s.contains("command"), url = s.contains("url");
    if (cmd == url) return make_error(where + " needs exactly one of 'command' (stdio) or 'url' (HTTP)", 2);
    if (cmd && !s["command"].is_string()) return make_error(where + ".command must be a string", 2);
    if (url && !s["url"].is_string()) return make_error(where + ".url must be a string", 2);
    if (s.contains("args")) {
      if (!s["args"].is_array()) return make_error(where + ".args must be an array of strings", 2);
      for (const auto& a : s["args"])
        if (!a.is_string()) return make_error(where + ".args must be an array of strings", 2);
    }
    for (const char* k : {"env", "headers"})
      if (s.contains(k)) {
        if (!s[k].is_object()) return make_error(where + "." + k + " must be an object of strings", 2);
        for (auto e = s[k].begin(); e != s[k].end(); ++e)
          if (!e.value().is_string()) return make_error(where + "." + k + "." + e.key() + " must be a string", 2);
      }
  }
  return {};
}

Status apply_config_json(const json& j, const std::string& origin, bool trusted, AgentConfig& cfg) {
  if (!j.is_object()) return make_error(origin + ": expected a JSON object at the top level", 2);
  static const char* known[] = {"provider", "model", "base_url", "api_key", "api_key_env", "script",
                                "budgets", "sandbox", "mcpServers", "chat_template", "temperature",
                                "max_output_tokens", "request_timeout_s", "retries", "$schema"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) return make_error(origin + ": unknown field '" + it.key() + "'", 2);
  }
  for (const char* k : {"provider", "model", "base_url", "api_key", "api_key_env", "script", "chat_template"})
    M1_TRY(want(j, k, json::value_t::string, "a string", origin));
  for (const char* k : {"temperature", "request_timeout_s"})
    M1_TRY(want(j, k, json::value_t::number_float, "a number", origin));
  if (!trusted)
    for (const char* k : {"base_url", "api_key", "api_key_env"})
      if (j.contains(k))
        return make_error(origin + ": '" + k + "' may only be set in your user config (" +
                              (user_config_dir() / "config.json").string() + "), flags or environment", 2);
  auto& p = cfg.provider;
  if (j.contains("provider")) {
    p.kind = j["provider"];
    if (p.kind != "local" && p.kind != "openai" && p.kind != "scripted")
      return make_error(origin + ": provider must be local, openai or scripted, got '" + p.kind + "'", 2);
  }
  if (j.contains("model")) p.model = j["model"];
  if (j.contains("base_url")) p.base_url = j["base_url"];
  if (j.contains("api_key")) p.api_key = j["api_key"];
  if (j.contains("api_key_env")) p.api_key = env(j["api_key_env"].get<std::string>().c_str());
  if (j.contains("script")) p.script = j["script"];
  if (j.contains("chat_template")) p.chat_template = j["chat_template"];
  if (j.contains("temperature")) p.temperature = j["temperature"];
  if (j.contains("request_timeout_s")) p.request_timeout_s = j["request_timeout_s"];
  if (j.contains("max_output_tokens")) p.max_output_tokens = j["max_output_tokens"].get<size_t>();
  if (j.contains("retries")) p.retries = j["retries"].get<int>();
  if (j.contains("budgets")) {
    auto st = budgets_from_json(j["budgets"], cfg.budgets);
    if (!st.ok()) return make_error(origin + ": " + st.error().message, 2);
  }
  if (j.contains("sandbox")) {
    const json& s = j["sandbox"];
    if (!s.is_object()) return make_error(origin + ": 'sandbox' must be an object", 2);
    if (s.contains("mode")) {
      if (s["mode"] != "on" && s["mode"] != "off")
        return make_error(origin + ": sandbox.mode must be \"on\" or \"off\"", 2);
      if (s["mode"] == "off" && !trusted)
        return make_error(origin + ": a repository config may not turn the sandbox off", 2);
      cfg.sandbox.enforce = s["mode"] == "on";
    }
    if (s.contains("network")) {
      if (!s["network"].is_boolean()) return make_error(origin + ": sandbox.network must be a boolean", 2);
      if (s["network"].get<bool>() && !trusted)
        return make_error(origin + ": a repository config may not turn network access on", 2);
      cfg.sandbox.network = s["network"];
    }
    if (s.contains("shell_timeout_s")) {
      if (!s["shell_timeout_s"].is_number() || s["shell_timeout_s"].get<double>() <= 0)
        return make_error(origin + ": sandbox.shell_timeout_s must be a positive number", 2);
      cfg.sandbox.shell_timeout_s = s["shell_timeout_s"];
    }
  }
  if (j.contains("mcpServers")) {
    M1_TRY(validate_mcp_servers(j["mcpServers"], origin));
    for (auto it = j["mcpServers"].begin(); it != j["mcpServers"].end(); ++it)
      cfg.mcp_servers[it.key()] = it.value();
  }
  cfg.sources.push_back(origin);
  return {};
}

Status apply_config_file(const fs::path& file, bool trusted, AgentConfig& cfg) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  std::ifstream in(file);
  if (!in) return make_error("cannot read config file " + file.string(), 2);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return make_error("config file " + file.string() + " is not valid JSON", 2);
  return apply_config_json(j, file.string(), trusted, cfg);
}

Result<AgentConfig> load_config(const fs::path& repo) {
  AgentConfig cfg;
  cfg.provider.kind = "local";
  M1_TRY(apply_config_file(user_config_dir() / "config.json", true, cfg));
  if (!repo.empty()) M1_TRY(apply_config_file(repo / ".m1" / "config.json", false, cfg));
  auto& p = cfg.provider;
  if (!env("M1_PROVIDER").empty()) p.kind = env("M1_PROVIDER");
  if (!env("M1_MODEL").empty()) p.model = env("M1_MODEL");
  if (!env("OPENAI_BASE_URL").empty()) p.base_url = env("OPENAI_BASE_URL");
  if (!env("M1_BASE_URL").empty()) p.base_url = env("M1_BASE_URL");
  if (!env("OPENAI_API_KEY").empty()) p.api_key = env("OPENAI_API_KEY");
  if (!env("M1_API_KEY").empty()) p.api_key = env("M1_API_KEY");
  return cfg;
}

}  // namespace m1::agent
