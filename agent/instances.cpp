// agent/instances.cpp: reading instance and prediction files; errors name the file, line, field.
#include "agent/instances.h"

#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::agent {

namespace {

Result<std::vector<json>> read_jsonl(const fs::path& file, const char* what) {
  std::ifstream in(file);
  if (!in) return make_error("cannot open " + std::string(what) + " file '" + file.string() + "'", 2);
  std::vector<json> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return make_error(file.string() + " line " + std::to_string(n) + ": expected one JSON object per line", 2);
    j["__line"] = n;
    out.push_back(std::move(j));
  }
  return out;
}

Result<std::string> str_field(const json& j, const char* key, bool required, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return make_error(where + ": missing field '" + key + "'", 2);
    return std::string();
  }
  if (!j[key].is_string()) return make_error(where + ": field '" + key + "' must be a string", 2);
  return j[key].get<std::string>();
}

Result<std::vector<std::string>> list_field(const json& j, const char* key, const std::string& where) {
  std::vector<std::string> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  json v = j[key];
  if (v.is_string()) {
    v = json::parse(v.get<std::string>(), nullptr, false);
    if (v.is_discarded()) return make_error(where + ": field '" + key + "' is a string but not a JSON array", 2);
  }
  if (!v.is_array()) return make_error(where + ": field '" + key + "' must be a list of test names", 2);
  for (const auto& t : v) {
    if (!t.is_string()) return make_error(where + ": field '" + key + "' must hold strings", 2);
    out.push_back(t);
  }
  return out;
}

}  // namespace

Result<std::vector<Instance>> load_instances(const fs::path& file) {
  M1_ASSIGN_OR_RETURN(auto rows, read_jsonl(file, "instances"));
  std::vector<Instance> out;
  fs::path base = fs::absolute(file).parent_path();
  for (const auto& j : rows) {
    std::string where = file.string() + " line " + std::to_string(j["__line"].get<int>());
    Instance in;
    M1_ASSIGN_OR_RETURN(in.instance_id, str_field(j, "instance_id", true, where));
    M1_ASSIGN_OR_RETURN(in.repo, str_field(j, "repo", true, where));
    M1_ASSIGN_OR_RETURN(in.base_commit, str_field(j, "base_commit", false, where));
    M1_ASSIGN_OR_RETURN(in.problem_statement, str_field(j, "problem_statement", true, where));
    M1_ASSIGN_OR_RETURN(in.test_patch, str_field(j, "test_patch", false, where));
    M1_ASSIGN_OR_RETURN(in.test_cmd, str_field(j, "test_cmd", false, where));
    M1_ASSIGN_OR_RETURN(in.fail_to_pass, list_field(j, "FAIL_TO_PASS", where));
    M1_ASSIGN_OR_RETURN(in.pass_to_pass, list_field(j, "PASS_TO_PASS", where));
    bool url = in.repo.find("://") != std::string::npos || in.repo.rfind("git@", 0) == 0;
    if (!url && fs::path(in.repo).is_relative()) in.repo = (base / in.repo).lexically_normal().string();
    for (const auto& o : out)
      if (o.instance_id == in.instance_id) return make_error(where + ": duplicate instance_id '" + in.instance_id + "'", 2);
    out.push_back(std::move(in));
  }
  if (out.empty()) return make_error("instances file '" + file.string() + "' holds no instances", 2);
  return out;
}

Result<std::vector<Prediction>> load_predictions(const fs::path& file) {
  M1_ASSIGN_OR_RETURN(auto rows, read_jsonl(file, "predictions"));
  std::vector<Prediction> out;
  for (const auto& j : rows) {
    std::string where = file.string() + " line " + std::to_string(j["__line"].get<int>());
    Prediction p;
    M1_ASSIGN_OR_RETURN(p.instance_id, str_field(j, "instance_id", true, where));
    M1_ASSIGN_OR_RETURN(p.model_name_or_path, str_field(j, "model_name_or_path", false, where));
    M1_ASSIGN_OR_RETURN(p.model_patch, str_field(j, "model_patch", false, where));
    out.push_back(std::move(p));
  }
  return out;
}

json to_json(const Prediction& p) {
  json j = {{"instance_id", p.instance_id}, {"model_name_or_path", p.model_name_or_path},
            {"model_patch", p.model_patch}};
  for (auto it = p.extra.begin(); it != p.extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string test_command(const std::string& test_cmd, const std::string& test) {
  if (test_cmd.find("{test}") == std::string::npos) return test_cmd + " " + shell_quote(test);
  std::string out = test_cmd;
  for (size_t pos = out.find("{test}"); pos != std::string::npos; pos = out.find("{test}", pos)) {
    std::string q = shell_quote(test);
    out.replace(pos, 6, q);
    pos += q.size();
  }
  return out;
}

}  // namespace m1::agent
