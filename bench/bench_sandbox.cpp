// bench_sandbox: what confinement costs per command. Median wall time of running /bin/true bare
// (posix_spawn + waitpid) versus through sandbox::run (namespaces, mounts, Landlock, seccomp, init),
// also with the network namespace skipped and in --sandbox off mode, to show where the time goes.
// Checks correctness first (the confined run really is confined), then warms up, then times N runs.
// Usage: bench_sandbox [N=200]. Prints a table (wall-time percentiles and CPU per run, which a loaded
// machine does not inflate) and one JSON line; exits 1 if the check fails.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

extern char** environ;
namespace sb = m1::sandbox;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
  double median, p10, p90, mean;
  double cpu;  // CPU ms per run (this process + children): unlike wall time, immune to machine load
};

double cpu_ms() {
  double t = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage r{};
    getrusage(who, &r);
    t += (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
  }
  return t;
}

Stats stats(std::pair<std::vector<double>, double> runs) {
  auto& v = runs.first;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))]; };
  return {at(0.5), at(0.1), at(0.9), sum / v.size(), runs.second};
}

std::pair<std::vector<double>, double> time_runs(int n, const std::function<bool()>& once) {
  std::vector<double> ms;
  double cpu0 = cpu_ms();
  ms.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!once()) {
      std::fprintf(stderr, "bench_sandbox: run %d failed\n", i);
      std::exit(1);
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return {ms, (cpu_ms() - cpu0) / n};
}

bool bare_true() {
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) return false;
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
  }
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200;
  if (n < 1) {
    std::fprintf(stderr, "usage: bench_sandbox [N>=1]\n");
    return 2;
  }
  auto avail = sb::check_available();
  if (!avail.ok()) {
    std::fprintf(stderr, "bench_sandbox: %s\n", avail.error().message.c_str());
    return 1;
  }
  char dir[] = "/tmp/m1-bench-sandbox-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  sb::Policy enforce;
  enforce.workspace = dir;
  enforce.env = {{"PATH", "/usr/bin:/bin"}};
  sb::Policy with_net = enforce;
  with_net.network = true;
  sb::Policy off = enforce;
  off.mode = sb::Mode::Off;

  // Correctness first: the confined command runs, and runs under seccomp with no_new_privs.
  sb::Command check;
  check.argv = {"/bin/sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"};
  auto r = sb::run(check, enforce);
  if (!r.ok() || r->exit_code != 0 || r->output.find("Seccomp:\t2") == std::string::npos ||
      r->output.find("NoNewPrivs:\t1") == std::string::npos) {
    std::fprintf(stderr, "bench_sandbox: correctness check failed: %s\n",
                 r.ok() ? r->output.c_str() : r.error().message.c_str());
    return 1;
  }

  sb::Command t;
  t.argv = {"/bin/true"};
  auto confined = [&](const sb::Policy& p) {
    return [&t, &p] {
      auto rr = sb::run(t, p);
      return rr.ok() && rr->exit_code == 0;
    };
  };
  int warm = std::min(n, 10);
  time_runs(warm, bare_true);
  time_runs(warm, confined(enforce));
  Stats bare = stats(time_runs(n, bare_true));
  Stats conf = stats(time_runs(n, confined(enforce)));
  Stats net = stats(time_runs(n, confined(with_net)));
  Stats unc = stats(time_runs(n, confined(off)));
  std::filesystem::remove_all(dir);

  std::string title = "/bin/true, N=" + std::to_string(n);
  std::printf("%-34s %10s %10s %10s %10s %10s\n", title.c_str(), "median ms", "p10 ms", "p90 ms", "mean ms",
              "cpu ms");
  auto row = [](const char* name, const Stats& s) {
    std::printf("%-34s %10.3f %10.3f %10.3f %10.3f %10.3f\n", name, s.median, s.p10, s.p90, s.mean, s.cpu);
  };
  row("bare posix_spawn", bare);
  row("sandbox (all layers, no network)", conf);
  row("sandbox (network on: no net ns)", net);
  row("sandbox off (timeout/group only)", unc);
  double overhead = conf.median - bare.median;
  double load1 = 0;
  getloadavg(&load1, 1);
  if (load1 > 2) std::printf("note: load average %.1f: wall times include waiting for a CPU; see cpu ms\n", load1);
  std::printf("confined overhead (median): %.3f ms (target < 10 ms): %s\n", overhead,
              overhead < 10 ? "PASS" : "FAIL");
  std::printf("{\"bench\":\"sandbox\",\"n\":%d,\"bare_median_ms\":%.3f,\"confined_median_ms\":%.3f,"
              "\"confined_p90_ms\":%.3f,\"network_on_median_ms\":%.3f,\"off_median_ms\":%.3f,"
              "\"overhead_median_ms\":%.3f,\"bare_cpu_ms\":%.3f,\"confined_cpu_ms\":%.3f,\"load1\":%.2f,"
              "\"target_ms\":10,\"pass\":%s}\n",
              n, bare.median, conf.median, conf.p90, net.median, unc.median, overhead, bare.cpu, conf.cpu, load1,
              overhead < 10 ? "true" : "false");
  return 0;
}
