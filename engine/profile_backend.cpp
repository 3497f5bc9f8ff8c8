// ProfilingBackend (see profile_backend.h): each op is timed between two steady_clock reads with
// the inner backend synchronized at the end, and accumulated under a key of op name + the shape
// that decides its cost (T rows, weight rows x cols). Memory ops are forwarded untimed except
// copy_to_host (the logits' way out); every optional op is forwarded, step graphs excepted.
#include "engine/profile_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace m1::engine {
namespace {

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
  ~ProfilingBackend() override { report(); }

  std::string name() const override { return in_->name(); }
  Result<Buffer> alloc(size_t bytes) override { return in_->alloc(bytes); }  // owner: the inner backend
  void free_device(void* data) override { in_->free_device(data); }
  void copy_to_device(void* d, const void* s, size_t n) override { in_->copy_to_device(d, s, n); }
  void copy_to_host(void* d, const void* s, size_t n) override {
    Timer t(*this, "copy_to_host " + std::to_string(n) + " B");
    in_->copy_to_host(d, s, n);
  }
  void copy_device(void* d, const void* s, size_t n) override { in_->copy_device(d, s, n); }
  void fill_zero(void* d, size_t n) override { in_->fill_zero(d, n); }
  void synchronize() override { in_->synchronize(); }
  Result<Weight> upload_weight(const TensorView& t) override { return in_->upload_weight(t); }

  void matmul(const float* x, int64_t T, const Weight& W, float* y, bool acc) override {
    Timer t(*this, "matmul", T, W);
    in_->matmul(x, T, W, y, acc);
  }
  void embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) override {
    Timer t(*this, "embedding", T, E);
    in_->embedding(E, ids, T, y);
  }
  void rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) override {
    Timer t(*this, "rmsnorm", T, w);
    in_->rmsnorm(x, w, T, n, eps, y);
  }
  void add_rmsnorm(float alpha, const float* a, float beta, const float* b, int64_t T, int64_t n, const Weight& w,
                   float eps, float* x, float* y) override {
    Timer t(*this, "add_rmsnorm", T, w);
    in_->add_rmsnorm(alpha, a, beta, b, T, n, w, eps, x, y);
  }
  void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) override {
    Timer t(*this, "axpby n=" + std::to_string(n));
    in_->axpby(alpha, a, beta, b, n, y);
  }
  void silu(float* x, int64_t n) override {
    Timer t(*this, "silu n=" + std::to_string(n));
    in_->silu(x, n);
  }
  void sigmoid_mul(const float* g, const float* x, int64_t T, int64_t n, float* y) override {
    Timer t(*this, "sigmoid_mul T=" + std::to_string(T) + " n=" + std::to_string(n));
    in_->sigmoid_mul(g, x, T, n, y);
  }
  void lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* s, float* o) override {
    Timer t(*this, "lightning_prefill T=" + std::to_string(T) + heads(p.num_heads, p.head_dim));
    in_->lightning_prefill(qkv, T, p, s, o);
  }
  void lightning_decode(const float* qkv, int64_t B, const LightningParams& p, float* const* s, float* o) override {
    Timer t(*this, "lightning_decode B=" + std::to_string(B) + heads(p.num_heads, p.head_dim));
    in_->lightning_decode(qkv, B, p, s, o);
  }
  void rope(float* x, int64_t T, int64_t nh, const int64_t* pos, const RopeParams& p) override {
    Timer t(*this, "rope T=" + std::to_string(T) + heads(nh, p.head_dim));
    in_->rope(x, T, nh, pos, p);
  }
  void kv_write(float* const* pb, const KvPoolShape& s, const KvSeq& seq, const float* k, const float* v,
                int64_t T) override {
    Timer t(*this, "kv_write T=" + std::to_string(T));
    in_->kv_write(pb, s, seq, k, v, T);
  }
  void attention_prefill(const float* q, int64_t T, int64_t nh, float* const* pb, const KvPoolShape& s,
                         const KvSeq& seq, float* o) override {
    Timer t(*this, "attention_prefill T=" + std::to_string(T) + heads(nh, s.head_dim));
    in_->attention_prefill(q, T, nh, pb, s, seq, o);
  }
  void attention_decode(const float* q, int64_t B, int64_t nh, float* const* pb, const KvPoolShape& s,
                        const KvSeq* seqs, float* o) override {
    Timer t(*this, "attention_decode B=" + std::to_string(B) + heads(nh, s.head_dim));
    in_->attention_decode(q, B, nh, pb, s, seqs, o);
  }
  // Timed as a whole, including the matmuls it makes on the inner backend (those are not listed
  // separately: the inner backend calls its own matmul, not this one).
  void moe(const float* x, int64_t T, const MoeWeights& w, float* out) override {
    Timer t(*this, "moe T=" + std::to_string(T) + " E=" + std::to_string(w.w1.size()) + " top" +
                       std::to_string(w.top_k));
    in_->moe(x, T, w, out);
  }
  Result<Weight> random_weight(DType dt, int64_t rows, int64_t cols, uint64_t seed, float mean, float sd) override {
    return in_->random_weight(dt, rows, cols, seed, mean, sd);
  }
  // Step graphs stay off (begin_graph's default false): a profile times each op as it runs, and
  // the synchronize() after each op could not be recorded into a graph anyway.
  bool can_sample() const override { return in_->can_sample(); }
  Result<int32_t> sample(const float* logits, int64_t n, const DeviceSampling& p) override {
    Timer t(*this, "sample n=" + std::to_string(n) + (p.temperature == 0.0f ? " greedy" : ""));
    return in_->sample(logits, n, p);
  }

 private:
  struct Entry {
    int64_t calls = 0;
    double seconds = 0;
  };
  struct Timer {
    Timer(ProfilingBackend& b, std::string k) : be(b), key(std::move(k)), t0(std::chrono::steady_clock::now()) {}
    Timer(ProfilingBackend& b, const char* op, int64_t T, const Weight& w)
        : Timer(b, std::string(op) + " T=" + std::to_string(T) + " " + std::to_string(w.rows) + "x" +
                       std::to_string(w.cols) + " " + std::string(dtype_name(w.dtype))) {}
    ~Timer() {
      be.in_->synchronize();
      Entry& e = be.table_[key];
      e.calls += 1;
      e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    ProfilingBackend& be;
    std::string key;
    std::chrono::steady_clock::time_point t0;
  };
  static std::string heads(int64_t nh, int64_t hd) {
    return " " + std::to_string(nh) + "x" + std::to_string(hd);
  }

  void report() const {
    std::vector<std::pair<std::string, Entry>> rows(table_.begin(), table_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
    double total = 0;
    for (const auto& r : rows) total += r.second.seconds;
    std::fprintf(stderr, "M1_PROFILE (%s): %.3f s in ops\n  %-52s %9s %11s %11s %6s\n", in_->name().c_str(), total,
                 "op", "calls", "total ms", "us/call", "share");
    for (const auto& [k, e] : rows)
      std::fprintf(stderr, "  %-52s %9lld %11.2f %11.2f %5.1f%%\n", k.c_str(), static_cast<long long>(e.calls),
                   e.seconds * 1e3, e.seconds * 1e6 / double(e.calls), total > 0 ? 100 * e.seconds / total : 0);
  }

  std::unique_ptr<Backend> in_;
  std::map<std::string, Entry> table_;
};

}  // namespace

bool profiling_requested() {
  const char* v = std::getenv("M1_PROFILE");
  return v && *v && std::strcmp(v, "0") != 0;
}

std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner) {
  return std::make_unique<ProfilingBackend>(std::move(inner));
}

}  // namespace m1::engine
