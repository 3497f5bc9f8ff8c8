// tools/process.h: run a trusted helper program (git) unconfined and capture its output.
// Only for commands the runtime itself chooses with fixed argv (never model text); model commands
// go through sandbox::run. stdin is /dev/null unless `input` is given.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace m1::tools {

struct ProcessOutput {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

Result<ProcessOutput> run_process(const std::vector<std::string>& argv,
                                  const std::filesystem::path& cwd,
                                  const std::optional<std::string>& input = std::nullopt);

// git with options that stop a repository's own config from running programs
// (fsmonitor, external diff, textconv, pagers, hooks).
std::vector<std::string> git_argv(std::initializer_list<std::string> args);

}  // namespace m1::tools
