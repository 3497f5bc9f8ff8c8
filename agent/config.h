// agent/config.h: configuration for agent runs. Sources, later wins:
//   defaults < user config (<config dir>/config.json) < repo config (<repo>/.m1/config.json)
//   < environment (M1_PROVIDER, M1_MODEL, M1_BASE_URL/OPENAI_BASE_URL, M1_API_KEY/OPENAI_API_KEY)
//   < command-line flags (applied by cli/).
// A repository is not the user: its config may not loosen the sandbox (mode off, network on) nor
// set base_url / api_key / api_key_env (that could send the user's key elsewhere); such fields in
// a repo config are an error naming the file and the field.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/provider.h"
#include "agent/types.h"
#include "common/result.h"

namespace m1::agent {

struct SandboxSettings {
  bool enforce = true;         // false only from the user: --sandbox off or the user config
  bool network = false;
  double shell_timeout_s = 120;
};

struct AgentConfig {
  ProviderOptions provider;    // kind defaults to "local"
  Budgets budgets;
  SandboxSettings sandbox;
  nlohmann::json mcp_servers = nlohmann::json::object();  // Claude Desktop / Cursor format
  std::vector<std::string> sources;                         // files that were read
};

std::filesystem::path user_config_dir();  // $M1_CONFIG_DIR, $XDG_CONFIG_HOME/m1, ~/.config/m1
std::filesystem::path state_dir();        // $M1_STATE_DIR, $XDG_STATE_HOME/m1, ~/.local/state/m1

// Reads one config file over `cfg`. `trusted` = the user's own file. A missing file is fine.
Status apply_config_file(const std::filesystem::path& file, bool trusted, AgentConfig& cfg);
// Merges one parsed config object (what apply_config_file reads); `origin` names it in errors.
Status apply_config_json(const nlohmann::json& j, const std::string& origin, bool trusted,
                         AgentConfig& cfg);
// Validates an `mcpServers` object: {"name": {"command": str, "args": [str], "env": {str: str}}
// or {"url": str, "headers": {...}}}.
Status validate_mcp_servers(const nlohmann::json& servers, const std::string& origin);
// defaults < user < repo < environment.
Result<AgentConfig> load_config(const std::filesystem::path& repo);

}  // namespace m1::agent
