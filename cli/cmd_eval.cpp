// cli/cmd_eval.cpp: `m1 eval --instances tasks.jsonl --predictions predictions.jsonl`: grades
// predictions (see agent/eval.h); prints a table, writes the JSON summary to --report
// (default <predictions>.report.json); --json prints the summary on stdout instead of the table.
#include <fstream>

#include "agent/eval.h"
#include "agent/interrupt.h"
#include "cli/agent_cli.h"

namespace m1::cli {
namespace {

struct EvalFlags {
  std::string instances, predictions, report, sandbox = "on";
  int workers = 1;
  double timeout_s = 300;
  bool json = false;
};

int run_eval_cmd(const EvalFlags& f) {
  auto on = parse_sandbox_flag(f.sandbox);
  if (!on.ok()) return fail(on.error()), 2;
  agent::EvalOptions o{f.instances, f.predictions, f.workers, *on, f.timeout_s};
  agent::InterruptGuard guard(/*exiting_after_interrupt=*/true);
  auto rep = agent::run_eval(o, guard.flag());
  if (!rep.ok()) return fail(rep.error()), exit_code();
  nlohmann::json summary = rep->summary();
  std::string report = f.report.empty() ? f.predictions + ".report.json" : f.report;
  std::ofstream out(report);
  if (!out) return fail(make_error("cannot write the report to '" + report + "'", 2)), 2;
  out << summary.dump(2) << "\n";
  if (f.json) {
    std::printf("%s\n", summary.dump().c_str());
  } else {
    std::printf("%s", rep->table().c_str());
    std::printf("report: %s\n", report.c_str());
  }
  return guard.flag()->load() ? 130 : 0;
}

}  // namespace

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto f = std::make_shared<EvalFlags>();
  auto* sub = root.add_subcommand("eval", "Grade predictions against tasks (SWE-bench style)");
  sub->add_option("--instances", f->instances, "tasks.jsonl")->required();
  sub->add_option("--predictions", f->predictions, "predictions.jsonl")->required();
  sub->add_option("--workers", f->workers, "instances graded in parallel")->check(CLI::PositiveNumber);
  sub->add_option("--timeout", f->timeout_s, "seconds per test command")->check(CLI::PositiveNumber);
  sub->add_option("--sandbox", f->sandbox, "on (default) | off");
  sub->add_option("--report", f->report, "where the JSON summary goes");
  sub->add_flag("--json", f->json, "print the JSON summary on stdout instead of the table");
  sub->callback([f] { set_exit_code(run_eval_cmd(*f)); });
});

}  // namespace m1::cli
