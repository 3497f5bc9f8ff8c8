// bench/bench_mcp_load.cpp: bounded loopback load on an MCP Streamable HTTP server: N
// concurrent clients, each its own MCP session on a keep-alive connection, calling one cheap
// tool until M calls each or a time limit. Every answer is checked (JSON or SSE body must carry
// the expected text for this request id) before it counts. Prints a table and one JSON line.
// Usage: bench_mcp_load --url http://127.0.0.1:PORT/mcp [--clients 32] [--calls 200]
//        [--seconds 20] [--tool test_simple_text] [--expect TEXT] [--label NAME]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string url, tool = "test_simple_text", expect = "This is a simple text response for testing.",
                   label = "server";
  int clients = 32, calls = 200, seconds = 20;
};

// The JSON-RPC message in a response body: plain JSON, or the SSE event carrying our id.
json message_for(const std::string& body, const std::string& ctype, int id) {
  if (ctype.find("text/event-stream") == std::string::npos) return json::parse(body, nullptr, false);
  size_t pos = 0;
  while ((pos = body.find("data:", pos)) != std::string::npos) {
    size_t end = body.find('\n', pos);
    std::string data = body.substr(pos + 5, end == std::string::npos ? std::string::npos : end - pos - 5);
    json m = json::parse(data, nullptr, false);
    if (m.is_object() && m.value("id", -1) == id) return m;
    pos = end == std::string::npos ? body.size() : end;
  }
  return json();
}

struct Worker {
  std::vector<double> latencies_ms;
  int errors = 0;
  std::string first_error;
};

void run_client(const Args& a, const std::string& host_port, const std::string& path, Clock::time_point deadline,
                Worker& w) {
  httplib::Client cli(host_port);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);  // same for both servers: no Nagle delay on our side
  cli.set_read_timeout(30, 0);
  httplib::Headers h = {{"Accept", "application/json, text/event-stream"}};
  auto fail = [&](const std::string& why) {
    if (w.first_error.empty()) w.first_error = why;
    ++w.errors;
  };
  json init = {{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"},
               {"params", {{"protocolVersion", "2025-11-25"}, {"capabilities", json::object()},
                           {"clientInfo", {{"name", "bench"}, {"version", "1"}}}}}};
  auto r = cli.Post(path, h, init.dump(), "application/json");
  if (!r) return fail("initialize: " + httplib::to_string(r.error()));
  if (r->status != 200 || !r->has_header("Mcp-Session-Id"))
    return fail("initialize: HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 200));
  h.emplace("Mcp-Session-Id", r->get_header_value("Mcp-Session-Id"));
  h.emplace("MCP-Protocol-Version", "2025-11-25");
  r = cli.Post(path, h, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", "application/json");
  if (!r || r->status != 202) return fail("initialized notification not accepted");
  for (int i = 1; i <= a.calls && Clock::now() < deadline; ++i) {
    json call = {{"jsonrpc", "2.0"}, {"id", i}, {"method", "tools/call"},
                 {"params", {{"name", a.tool}, {"arguments", json::object()}}}};
    auto t0 = Clock::now();
    r = cli.Post(path, h, call.dump(), "application/json");
    auto t1 = Clock::now();
    if (!r || r->status != 200) {
      fail(r ? "HTTP " + std::to_string(r->status) : "connection error");
      continue;
    }
    json m = message_for(r->body, r->get_header_value("Content-Type"), i);
    if (!m.is_object() || !m.contains("result") || m["result"]["content"][0].value("text", "") != a.expect) {
      fail("unexpected answer: " + r->body.substr(0, 200));
      continue;
    }
    w.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  cli.Delete(path, h);
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url") a.url = v;
    else if (k == "--clients") a.clients = std::stoi(v);
    else if (k == "--calls") a.calls = std::stoi(v);
    else if (k == "--seconds") a.seconds = std::stoi(v);
    else if (k == "--tool") a.tool = v;
    else if (k == "--expect") a.expect = v;
    else if (k == "--label") a.label = v;
    else {
      std::fprintf(stderr, "bench_mcp_load: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto s = a.url.find("://");
  auto p = s == std::string::npos ? std::string::npos : a.url.find('/', s + 3);
  if (a.url.empty() || p == std::string::npos || a.clients <= 0 || a.calls <= 0) {
    std::fprintf(stderr, "usage: bench_mcp_load --url http://127.0.0.1:PORT/mcp [--clients N] [--calls M] [--seconds S]\n");
    return 2;
  }
  std::string host_port = a.url.substr(0, p), path = a.url.substr(p);
  std::vector<Worker> workers(a.clients);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(a.seconds);
  for (int i = 0; i < a.clients; ++i)
    threads.emplace_back([&, i] { run_client(a, host_port, path, deadline, workers[i]); });
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  int errors = 0;
  std::string first_error;
  for (auto& w : workers) {
    all.insert(all.end(), w.latencies_ms.begin(), w.latencies_ms.end());
    errors += w.errors;
    if (first_error.empty()) first_error = w.first_error;
  }
  double rps = all.size() / elapsed, p50 = pct(all, 0.50), p99 = pct(all, 0.99);
  std::printf("%-22s %8s %8s %8s %10s %9s %9s\n", "server", "clients", "calls", "errors", "req/s", "p50 ms", "p99 ms");
  std::printf("%-22s %8d %8zu %8d %10.0f %9.2f %9.2f\n", a.label.c_str(), a.clients, all.size(), errors, rps, p50, p99);
  if (!first_error.empty()) std::fprintf(stderr, "first error: %s\n", first_error.c_str());
  json line = {{"bench", "mcp_load"}, {"label", a.label}, {"clients", a.clients}, {"calls", all.size()},
               {"errors", errors}, {"seconds", elapsed}, {"rps", rps}, {"p50_ms", p50}, {"p99_ms", p99}};
  std::printf("%s\n", line.dump().c_str());
  return errors == 0 && !all.empty() ? 0 : 1;
}
