// agent/batch.cpp: a pool of worker threads over the instances.
#include "agent/batch.h"

#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "agent/fix.h"
#include "agent/instances.h"

namespace fs = std::filesystem;

namespace m1::agent {

Result<BatchSummary> run_batch(const BatchOptions& o, SessionLog& log, std::FILE* progress,
                               const std::atomic<bool>* cancel) {
  if (o.workers < 1) return make_error("--workers must be at least 1", 2);
  M1_ASSIGN_OR_RETURN(auto instances, load_instances(o.instances));
  std::set<std::string> done;
  std::error_code ec;
  if (fs::exists(o.out, ec)) {
    M1_ASSIGN_OR_RETURN(auto prev, load_predictions(o.out));
    for (const auto& p : prev) done.insert(p.instance_id);
  }
  if (o.out.has_parent_path()) fs::create_directories(o.out.parent_path(), ec);
  std::ofstream out(o.out, std::ios::app);
  if (!out) return make_error("cannot write predictions to '" + o.out.string() + "'", 2);
  BatchSummary sum;
  sum.total = static_cast<int>(instances.size());
  std::mutex mu;
  size_t next = 0;
  auto worker = [&] {
    for (;;) {
      const Instance* in = nullptr;
      {
        std::lock_guard<std::mutex> l(mu);
        while (next < instances.size() && done.count(instances[next].instance_id)) {
          ++next;
          ++sum.skipped;
        }
        if (next >= instances.size() || (cancel && cancel->load())) return;
        in = &instances[next++];
      }
      FixRequest req;
      req.repo = in->repo;
      req.problem_statement = in->problem_statement;
      req.base_commit = in->base_commit;
      req.instance_id = in->instance_id;
      req.kind = "batch-fix";
      req.config = o.config;
      req.keep_worktree = false;
      auto r = run_fix(req, log, nullptr, cancel);
      std::lock_guard<std::mutex> l(mu);
      Prediction p;
      p.instance_id = in->instance_id;
      if (r.ok()) {
        p.model_name_or_path = r->provider_label;
        p.model_patch = r->patch;
        p.extra = {{"stop_reason", stop_reason_name(r->result.reason)}, {"session_id", r->session_id},
                   {"steps", r->state.turns}, {"input_tokens", r->state.usage.input_tokens},
                   {"output_tokens", r->state.usage.output_tokens}, {"seconds", r->state.seconds}};
        if (r->result.reason == StopReason::Interrupted) return;  // not finished: rerun later
        sum.submitted += r->result.reason == StopReason::Submitted;
      } else {
        ++sum.failed;
        p.model_name_or_path = o.config.provider.kind;
        p.extra = {{"stop_reason", "error"}, {"error", r.error().message}};
      }
      out << to_json(p).dump() << "\n";
      out.flush();
      if (progress)
        std::fprintf(progress, "[%s] %s (%zu bytes of patch)%s%s\n", in->instance_id.c_str(),
                     p.extra.value("stop_reason", "").c_str(), p.model_patch.size(),
                     r.ok() ? "" : ": ", r.ok() ? "" : r.error().message.c_str());
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < o.workers; ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return sum;
}

}  // namespace m1::agent
