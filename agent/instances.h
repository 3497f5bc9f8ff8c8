// agent/instances.h: SWE-bench-style task instances and predictions (JSON Lines files).
//   instance: instance_id, repo (local path — relative to the tasks file's folder — or git URL),
//             base_commit, problem_statement, test_patch?, FAIL_TO_PASS, PASS_TO_PASS, test_cmd
//   prediction: instance_id, model_name_or_path, model_patch
// FAIL_TO_PASS / PASS_TO_PASS may be JSON arrays or strings holding a JSON array (as SWE-bench
// ships them). test_cmd is a shell command; "{test}" in it is replaced by the shell-quoted test
// name, otherwise the quoted name is appended.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace m1::agent {

struct Instance {
  std::string instance_id;
  std::string repo;  // resolved: absolute path or URL
  std::string base_commit;
  std::string problem_statement;
  std::string test_patch;
  std::vector<std::string> fail_to_pass, pass_to_pass;
  std::string test_cmd;
};

struct Prediction {
  std::string instance_id;
  std::string model_name_or_path;
  std::string model_patch;
  nlohmann::json extra = nlohmann::json::object();  // stop_reason, session_id, ... (written as-is)
};

Result<std::vector<Instance>> load_instances(const std::filesystem::path& file);
Result<std::vector<Prediction>> load_predictions(const std::filesystem::path& file);
nlohmann::json to_json(const Prediction& p);
std::string shell_quote(const std::string& s);
std::string test_command(const std::string& test_cmd, const std::string& test);

}  // namespace m1::agent
