// How a subcommand joins the `m1` executable: each cli/cmd_*.cpp defines a registrar that adds
// its CLI11 subcommand, so adding a command never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"

namespace m1::cli {

// Called once by main() with the root app; adds one subcommand (and its callback).
using Registration = std::function<void(CLI::App& root)>;

std::vector<Registration>& registrations();

struct Registrar {
  explicit Registrar(Registration r) { registrations().push_back(std::move(r)); }
};

// A subcommand callback reports its outcome here; main() returns it as the exit code.
void set_exit_code(int code);
int exit_code();

// Prints "m1: <message>" on stderr and records the error's exit code.
void fail(const Error& e);

}  // namespace m1::cli

#define M1_CLI_CONCAT_(a, b) a##b
#define M1_CLI_CONCAT(a, b) M1_CLI_CONCAT_(a, b)
// M1_REGISTER_COMMAND([](CLI::App& root) { auto* sub = root.add_subcommand(...); ... });
#define M1_REGISTER_COMMAND(fn) \
  static ::m1::cli::Registrar M1_CLI_CONCAT(m1_cli_registrar_, __LINE__)(fn)
