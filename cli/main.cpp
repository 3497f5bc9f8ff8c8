// The `m1` executable: builds the CLI11 app from every registered subcommand and runs it.
// Exit codes: 0 success, 1 runtime failure, 2 usage error (bad flags, missing arguments).
#include <cstdio>
#include <iostream>

#include "cli/command.h"

namespace m1::cli {
std::vector<Registration>& registrations() {
  static std::vector<Registration> r;
  return r;
}
static int g_exit_code = 0;
void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }
void fail(const Error& e) {
  std::fprintf(stderr, "m1: %s\n", e.message.c_str());
  g_exit_code = e.code ? e.code : 1;
}
}  // namespace m1::cli

int main(int argc, char** argv) {
  CLI::App app{"m1: a runtime for agentic tool use around an embedded MiniMax-M1 engine", "m1"};
  app.set_version_flag("--version", "m1 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);
  for (auto& reg : m1::cli::registrations()) reg(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and a hint to use --help
    return 2;
  }
  return m1::cli::exit_code();
}
