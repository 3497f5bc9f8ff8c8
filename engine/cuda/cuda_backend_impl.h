// CudaBackend, the class behind make_cuda_backend (cuda_backend.h), shared by its three files:
//   cuda_backend.cpp   memory, weight upload (pinned staging), random weights, the model ops
//   cuda_step.cpp      step graphs (capture / replay of one decode step), uploads, scratch,
//                      per-op profiling
//   cuda_sampling.cpp  device sampling
// Decisions the code cannot show:
// - Graph replay re-walks the model's ops on the host: each op first stages the host arrays it
//   would upload (ids, positions, page tables) into the pinned slot recorded at capture, then
//   compares a hash of its arguments (pointers, shapes, by-value kernel parameters) with the
//   recorded one instead of launching. Any difference refuses the replay (nothing has run) and
//   the caller walks again under capture. So a graph can never run with stale arguments.
// - Tables whose size grows with the sequence (K/V page lists) are padded to buckets of 16 pages
//   and the attention grid is sized by the bucket, so a decode step records once per 1024 tokens.
// - Scratch buffers a recorded graph points into are never freed while graphs exist: growing one
//   outside a capture drops all graphs first; growing one during a capture keeps the old buffer.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/lightning.h"

namespace m1::engine::cuda_impl {

class CudaBackend;

// A device scratch area that grows on demand (see the decision above).
class Scratch {
 public:
  explicit Scratch(CudaBackend* owner) : owner_(owner) {}
  ~Scratch();
  void* get(size_t bytes);

 private:
  CudaBackend* owner_;
  void* p_ = nullptr;
  size_t cap_ = 0;
};

struct GraphUpload {
  void* pinned = nullptr;
  void* dev = nullptr;
  size_t bytes = 0;
};

struct GraphRec {
  cudaGraphExec_t exec = nullptr;
  cudaEvent_t done = nullptr;
  std::vector<uint64_t> sig;          // one hash per op, in order
  std::vector<GraphUpload> uploads;   // one per upload, in order
  uint64_t last_use = 0;
};

struct ProfRec {
  std::string op;
  double bytes = 0, flops = 0;
  cudaEvent_t a = nullptr, b = nullptr;
};

class CudaBackend final : public Backend, public CudaControl {
 public:
  explicit CudaBackend(const CudaOptions& o);
  ~CudaBackend() override;
  std::string name() const override { return "cuda:" + std::to_string(opt_.device); }

  // ---- memory ----
  Result<Buffer> alloc(size_t bytes) override;
  void free_device(void* data) override;
  void copy_to_device(void* dst, const void* src, size_t n) override;
  void copy_to_host(void* dst, const void* src, size_t n) override;
  void copy_device(void* dst, const void* src, size_t n) override;
  void fill_zero(void* dst, size_t n) override;
  void synchronize() override;
  Result<Weight> upload_weight(const TensorView& t) override;
  Result<Weight> random_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed, float mean, float std) override;

  // ---- ops ----
  void matmul(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) override;
  void embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) override;
  void rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) override;
  void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) override;
  void add_rmsnorm(float alpha, const float* a, float beta, const float* b, int64_t T, int64_t n, const Weight& w,
                   float eps, float* x, float* y) override;
  void silu(float* x, int64_t n) override;
  void sigmoid_mul(const float* gate, const float* x, int64_t T, int64_t n, float* y) override;
  void rmsnorm_sigmoid_gate(const float* x, const Weight& w, int64_t T, int64_t n, float eps, const float* gate,
                            float* y) override;
  void lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* state, float* out) override;
  void silu_lightning_prefill(float* qkv, int64_t T, const LightningParams& p, float* state, float* out) override;
  void silu_lightning_decode(float* qkv, int64_t B, const LightningParams& p, float* const* states,
                             float* out) override;
  void lightning_decode(const float* qkv, int64_t B, const LightningParams& p, float* const* states,
                        float* out) override;
  void rope(float* x, int64_t T, int64_t nheads, const int64_t* positions, const RopeParams& p) override;
  void kv_write(float* const* page_base, const KvPoolShape& s, const KvSeq& seq, const float* k, const float* v,
                int64_t T) override;
  void attention_prefill(const float* q, int64_t T, int64_t nh, float* const* page_base, const KvPoolShape& s,
                         const KvSeq& seq, float* out) override;
  void attention_decode(const float* q, int64_t B, int64_t nh, float* const* page_base, const KvPoolShape& s,
                        const KvSeq* seqs, float* out) override;
  void moe(const float* x, int64_t T, const MoeWeights& w, float* out) override;

  // ---- step graphs, sampling ----
  bool begin_graph(uint64_t key) override;
  bool end_graph() override;
  bool can_sample() const override { return true; }
  Result<int32_t> sample(const float* logits, int64_t n, const DeviceSampling& p) override;

  // ---- CudaControl ----
  size_t bytes_allocated() const override { return bytes_now_; }
  size_t peak_bytes_allocated() const override { return bytes_peak_; }
  void reset_peak() override { bytes_peak_ = bytes_now_; }
  void set_graphs(bool on) override;
  int64_t graph_captures() const override { return captures_; }
  int64_t graph_replays() const override { return replays_; }
  void set_profiling(bool on) override;
  std::vector<OpProfile> take_profile() override;
  void set_tensor_core_attention(bool on) override { opt_.tensor_core_attention = on; }

  // ---- used by Scratch and the op files ----
  enum class Mode { Eager, Capture, Replay };
  Mode mode() const { return mode_; }
  void* dev_malloc(size_t bytes);  // tracked; aborts on failure (scratch: a bug or a full card)
  void dev_free(void* p);
  void retire(void* p) { retired_.push_back(p); }  // freed when graphs are dropped
  void drop_graphs();
  cudaStream_t stream() const { return stream_; }

 private:
  void require_eager(const char* op) const;  // aborts inside a captured step graph
  // The used prefix of a by-value table (expert pointers, state pointers) for gate().
  struct Span {
    const void* p;
    size_t n;
  };
  static uint64_t hash_arg(uint64_t h, const Span& s) { return hash_bytes(h, s.p, s.n); }
  template <typename T>
  static uint64_t hash_arg(uint64_t h, const T& v) { return hash_bytes(h, &v, sizeof(v)); }
  // Hashes the op's arguments; false when the op must not launch (replay: compared instead).
  template <typename... A>
  bool gate(const char* op, const A&... args) {
    if (mode_ == Mode::Eager) return true;
    uint64_t h = hash_bytes(14695981039346656037ull, op, std::strlen(op));
    ((h = hash_arg(h, args)), ...);
    return record_or_check(h);
  }
  // 8 bytes per step (the by-value tables of the MoE and lightning ops are kilobytes each).
  static uint64_t hash_bytes(uint64_t h, const void* p, size_t n) {
    const unsigned char* c = static_cast<const unsigned char*>(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, c + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
  }
  bool record_or_check(uint64_t h);
  // Host bytes -> device, stream-ordered (eager: upload scratch; capture: a pinned slot and a
  // recorded copy; replay: staged into the recorded slot).
  void* upload(const void* src, size_t n);
  // Page pointer table of `seqs` (rows of `max_pages` entries, zero-padded) uploaded with `extra`
  // bytes after it; returns the device table.
  void attention(const float* q, int NQ, int64_t nh, float* const* page_base, const KvPoolShape& s,
                 const KvSeq* seqs, int nseq, const std::vector<int>& qs, const std::vector<int>& ql, int max_len,
                 float* out);
  void moe_grouped_gemm(const float* x, int64_t T, const MoeWeights& w, float* out);
  cuda::HeadSlopes slopes(const LightningParams& p);
  // silu: apply SiLU to q, k, v as the kernel loads them (the silu_lightning_* ops).
  void lightning_prefill_impl(const float* qkv, int64_t T, const LightningParams& p, float* state, float* out,
                              bool silu);
  void lightning_decode_impl(const float* qkv, int64_t B, const LightningParams& p, float* const* states, float* out,
                             bool silu);
  void gemm(const float* x, int64_t M, const Weight& W, float* y, bool accumulate);

  // Profiling: an op's events (eager only).
  // Label: op, then " RxC" when r >= 0, then " " + tag when given (built only while profiling).
  struct Prof {
    CudaBackend* b;
    long idx = -1;
    Prof(CudaBackend* be, const char* op, double bytes, double flops, int64_t r = -1, int64_t c = -1,
         const char* tag = nullptr);
    ~Prof();
  };

  CudaOptions opt_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Gemm> gemm_;
  std::vector<void*> weights_;
  std::unordered_map<void*, size_t> sizes_;
  size_t bytes_now_ = 0, bytes_peak_ = 0;
  Scratch cast_{this}, upload_{this}, attn_ws_{this}, moe_{this}, sample_ws_{this};

  // pinned staging for upload_weight
  void* stage_[2] = {nullptr, nullptr};
  cudaEvent_t stage_done_[2] = {nullptr, nullptr};

  // step graphs
  Mode mode_ = Mode::Eager;
  std::map<uint64_t, GraphRec> graphs_;
  GraphRec cur_;           // being captured
  GraphRec* replay_ = nullptr;
  uint64_t cur_key_ = 0, use_clock_ = 0;
  size_t sig_pos_ = 0, upload_pos_ = 0;
  bool replay_ok_ = true;
  std::vector<void*> retired_;
  int64_t captures_ = 0, replays_ = 0;

  // sampling
  uint8_t* mask_dev_ = nullptr;
  std::vector<uint8_t> mask_host_;
  int32_t* id_dev_ = nullptr;
  int32_t* id_host_ = nullptr;

  // profiling
  bool profiling_ = false;
  std::vector<ProfRec> prof_;
  std::vector<cudaEvent_t> event_pool_;
};

}  // namespace m1::engine::cuda_impl
