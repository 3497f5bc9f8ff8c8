// plan_io: the Plan as bytes, so the parent can hand it to the m1-sandbox-exec helper through a
// memfd. Decision: a flat little-endian record (u64 and length-prefixed strings) in field order;
// both sides are built from the same source in the same build, so no versioning is needed, but the
// reader still checks every length against what is left, and a magic number at both ends.
#include <unistd.h>

#include <cstring>

#include "sandbox/plan.h"

namespace m1::sandbox::detail {
namespace {

constexpr uint64_t kMagic = 0x6d31736270616e31ull;  // "m1sbpan1"

struct Writer {
  std::string out;
  void u64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void str(const std::string& s) {
    u64(s.size());
    out += s;
  }
  void strs(const std::vector<std::string>& v) {
    u64(v.size());
    for (const auto& s : v) str(s);
  }
};

struct Reader {
  const std::string& in;
  size_t pos = 0;
  bool ok = true;
  uint64_t u64() {
    uint64_t v = 0;
    if (in.size() - pos < sizeof v) {
      ok = false;
      return 0;
    }
    std::memcpy(&v, in.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  }
  std::string str() {
    uint64_t n = u64();
    if (!ok || in.size() - pos < n) {
      ok = false;
      return {};
    }
    std::string s = in.substr(pos, n);
    pos += n;
    return s;
  }
  size_t count() {  // an element count can never exceed the bytes left
    uint64_t n = u64();
    if (n > in.size() - pos) ok = false;
    return ok ? n : 0;
  }
  std::vector<std::string> strs() {
    std::vector<std::string> v(count());
    for (auto& s : v) s = str();
    return v;
  }
};

}  // namespace

std::string serialize_plan(const Plan& p) {
  Writer w;
  w.u64(kMagic);
  w.u64(p.confined);
  w.u64(p.probe);
  w.u64(p.own_session);
  w.u64(static_cast<uint64_t>(p.clone_flags));
  w.str(p.uid_map);
  w.str(p.gid_map);
  w.u64(p.ops.size());
  for (const auto& op : p.ops) {
    w.u64(op.kind);
    w.str(op.target);
    w.str(op.size_opt);
    w.u64(op.readonly);
    w.strs(op.mkdirs);
    w.strs(op.touch);
    w.u64(op.symlinks.size());
    for (const auto& [a, b] : op.symlinks) {
      w.str(a);
      w.str(b);
    }
    w.str(op.source);
    w.u64(static_cast<uint64_t>(op.clone_slot));
    w.u64(op.bind_readonly);
  }
  w.u64(p.clone_fds.size());
  w.str(p.proc_pid_max);
  w.u64(p.pid_max_required);
  w.str(p.cwd);
  for (uint64_t v : {p.cpu_seconds, p.memory_bytes, p.max_processes, p.max_file_bytes, p.max_open_files})
    w.u64(v);
  w.u64(static_cast<uint64_t>(p.cap_last));
  w.u64(static_cast<uint64_t>(p.landlock_abi));
  w.u64(p.landlock_fs_handled);
  w.u64(p.landlock_net_handled);
  w.u64(p.landlock_scoped);
  w.u64(p.landlock_rules.size());
  for (const auto& r : p.landlock_rules) {
    w.str(r.path);
    w.u64(r.access);
  }
  for (const auto* prog : {&p.bpf, &p.bpf_personality})
    w.str(std::string(reinterpret_cast<const char*>(prog->data()), prog->size() * sizeof(sock_filter)));
  w.strs(p.exec_candidates);
  w.strs(p.argv_store);
  w.strs(p.envp_store);
  w.u64(static_cast<uint64_t>(p.inject_fail_step));
  w.u64(kMagic);
  return w.out;
}

Result<Plan> deserialize_plan(const std::string& bytes) {
  Reader r{bytes};
  Plan p;
  if (r.u64() != kMagic) return make_error("m1-sandbox-exec: not a sandbox plan (bad magic)");
  p.confined = r.u64();
  p.probe = r.u64();
  p.own_session = r.u64();
  p.clone_flags = static_cast<int>(r.u64());
  p.uid_map = r.str();
  p.gid_map = r.str();
  p.ops.resize(r.count());
  for (auto& op : p.ops) {
    op.kind = r.u64() == MountOp::Bind ? MountOp::Bind : MountOp::Cover;
    op.target = r.str();
    op.size_opt = r.str();
    op.readonly = r.u64();
    op.mkdirs = r.strs();
    op.touch = r.strs();
    op.symlinks.resize(r.count());
    for (auto& [a, b] : op.symlinks) {
      a = r.str();
      b = r.str();
    }
    op.source = r.str();
    op.clone_slot = static_cast<int>(r.u64());
    op.bind_readonly = r.u64();
  }
  p.clone_fds.assign(r.count(), -1);
  p.proc_pid_max = r.str();
  p.pid_max_required = r.u64();
  p.cwd = r.str();
  for (uint64_t* v : {&p.cpu_seconds, &p.memory_bytes, &p.max_processes, &p.max_file_bytes, &p.max_open_files})
    *v = r.u64();
  p.cap_last = static_cast<int>(r.u64());
  p.landlock_abi = static_cast<int>(r.u64());
  p.landlock_fs_handled = r.u64();
  p.landlock_net_handled = r.u64();
  p.landlock_scoped = r.u64();
  p.landlock_rules.resize(r.count());
  for (auto& rule : p.landlock_rules) {
    rule.path = r.str();
    rule.access = r.u64();
  }
  for (auto* prog : {&p.bpf, &p.bpf_personality}) {
    std::string raw = r.str();
    prog->resize(raw.size() / sizeof(sock_filter));
    std::memcpy(prog->data(), raw.data(), prog->size() * sizeof(sock_filter));
  }
  p.exec_candidates = r.strs();
  p.argv_store = r.strs();
  p.envp_store = r.strs();
  p.inject_fail_step = static_cast<int32_t>(r.u64());
  if (r.u64() != kMagic || !r.ok || r.pos != bytes.size())
    return make_error("m1-sandbox-exec: truncated or corrupt sandbox plan");
  for (const auto& op : p.ops)
    if (op.kind == MountOp::Bind && (op.clone_slot < 0 || static_cast<size_t>(op.clone_slot) >= p.clone_fds.size()))
      return make_error("m1-sandbox-exec: corrupt sandbox plan (bad clone slot)");
  for (auto& s : p.argv_store) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  for (auto& s : p.envp_store) p.envp.push_back(s.data());
  p.envp.push_back(nullptr);
  return p;
}

}  // namespace m1::sandbox::detail
