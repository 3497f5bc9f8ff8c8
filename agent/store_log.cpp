// agent/store_log.cpp: SessionLog over memory::Store (SQLite, WAL). One mutex serializes calls
// so batch workers can share one connection.
#include <cstdlib>
#include <mutex>

#include "agent/session_log.h"
#include "memory/store.h"

namespace m1::agent {

namespace {

SessionRecord from_store(const memory::SessionInfo& i) {
  SessionRecord r;
  r.id = i.id;
  r.created_at = i.created_at;
  r.updated_at = i.updated_at;
  r.kind = i.kind;
  r.repo = i.repo;
  r.task = i.task;
  r.status = i.status;
  r.stop_reason = i.stop_reason;
  r.steps = static_cast<int>(i.steps);
  r.input_tokens = static_cast<uint64_t>(i.input_tokens);
  r.output_tokens = static_cast<uint64_t>(i.output_tokens);
  r.meta = i.meta;
  return r;
}

memory::SessionInfo to_store(const SessionRecord& r) {
  memory::SessionInfo i;
  i.id = r.id;
  i.kind = r.kind;
  i.repo = r.repo;
  i.task = r.task;
  i.status = r.status;
  i.stop_reason = r.stop_reason;
  i.steps = r.steps;
  i.input_tokens = static_cast<int64_t>(r.input_tokens);
  i.output_tokens = static_cast<int64_t>(r.output_tokens);
  i.meta = r.meta;
  return i;
}

class StoreLog : public SessionLog {
 public:
  explicit StoreLog(std::unique_ptr<memory::Store> s) : s_(std::move(s)) {}
  Status create(const SessionRecord& r) override {
    std::lock_guard<std::mutex> l(mu_);
    auto id = s_->create_session(to_store(r));
    if (!id.ok()) return id.error();
    return {};
  }
  Status update(const SessionRecord& r) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->update_session(to_store(r));
  }
  Result<SessionRecord> get(const std::string& id) override {
    std::lock_guard<std::mutex> l(mu_);
    M1_ASSIGN_OR_RETURN(auto info, s_->get_session(id));
    return from_store(info);
  }
  Result<std::vector<SessionRecord>> list(int limit) override {
    std::lock_guard<std::mutex> l(mu_);
    M1_ASSIGN_OR_RETURN(auto infos, s_->list_sessions(limit));
    std::vector<SessionRecord> out;
    for (const auto& i : infos) out.push_back(from_store(i));
    return out;
  }
  Result<std::string> last_id() override {
    std::lock_guard<std::mutex> l(mu_);
    M1_ASSIGN_OR_RETURN(auto id, s_->last_session_id());
    if (!id) return make_error("there are no sessions yet in " + s_->path().string(), 1);
    return *id;
  }
  Status append_event(const std::string& id, const std::string& type, const nlohmann::json& d) override {
    std::lock_guard<std::mutex> l(mu_);
    auto r = s_->append_event(id, type, d);
    if (!r.ok()) return r.error();
    return {};
  }
  Status append_message(const std::string& id, const std::string& role, const nlohmann::json& b) override {
    std::lock_guard<std::mutex> l(mu_);
    auto r = s_->append_message(id, role, b);
    if (!r.ok()) return r.error();
    return {};
  }
  Status record_tool_call(const std::string& id, const std::string& call_id, const std::string& name,
                          const nlohmann::json& args, const std::string& result, bool is_error,
                          double started, double finished) override {
    std::lock_guard<std::mutex> l(mu_);
    return s_->record_tool_call(id, call_id, name, args, result, is_error, started, finished);
  }
  Result<std::vector<StoredMessage>> messages(const std::string& id) override {
    std::lock_guard<std::mutex> l(mu_);
    M1_ASSIGN_OR_RETURN(auto ms, s_->messages(id));
    std::vector<StoredMessage> out;
    for (const auto& m : ms) out.push_back({m.role, m.content});
    return out;
  }

 private:
  std::unique_ptr<memory::Store> s_;
  std::mutex mu_;
};

}  // namespace

Result<std::unique_ptr<SessionLog>> open_session_log(const std::string& path) {
  std::string p = path;
  if (p.empty() && std::getenv("M1_STORE")) p = std::getenv("M1_STORE");
  auto store = memory::Store::open(p.empty() ? memory::Store::default_path() : std::filesystem::path(p));
  if (!store.ok()) return store.error();
  return std::unique_ptr<SessionLog>(new StoreLog(std::move(store).value()));
}

}  // namespace m1::agent
