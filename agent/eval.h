// agent/eval.h: `m1 eval --instances tasks.jsonl --predictions predictions.jsonl`, graded the
// SWE-bench way: in a fresh detached worktree at base_commit, apply the model patch, then the
// test patch, then run each FAIL_TO_PASS and PASS_TO_PASS test alone through test_cmd in the
// sandbox. Resolved only if every FAIL_TO_PASS test passes and no PASS_TO_PASS test fails.
#pragma once
#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace m1::agent {

struct EvalOptions {
  std::filesystem::path instances, predictions;
  int workers = 1;
  bool sandbox_enforce = true;
  double test_timeout_s = 300;
};

struct TestOutcome {
  std::string name;
  bool passed = false;
  std::string detail;  // exit code / timeout, and the output's tail when it failed
};

struct InstanceReport {
  std::string instance_id;
  std::string status;  // resolved | unresolved | no_prediction | empty_patch | patch_failed | error
  std::vector<TestOutcome> fail_to_pass, pass_to_pass;
  std::string error;
  double seconds = 0;
  bool resolved() const { return status == "resolved"; }
};

struct EvalReport {
  std::vector<InstanceReport> instances;
  nlohmann::json summary() const;  // {"total":..,"resolved":..,"resolve_rate":..,"instances":{...}}
  std::string table() const;       // one row per instance, aligned
};

Result<EvalReport> run_eval(const EvalOptions& o, const std::atomic<bool>* cancel);

}  // namespace m1::agent
