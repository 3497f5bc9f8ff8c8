// Backend: the ops the model graph (engine/model.cpp) is written over, one implementation per
// device (engine/cpu/ is the numerical reference, engine/cuda/ the GPU kernels).
//
// Decisions the signatures cannot show:
// - Activations are always fp32, row-major, contiguous; only weights come in bf16/fp16/fp32 and
//   are converted inside the kernels (a CPU weight points straight into the checkpoint's mmap).
// - Every pointer an op takes is a device pointer of that backend (from alloc()/upload_weight()),
//   except arguments documented as "host". Ops are asynchronous on a GPU; copy_to_host() and
//   synchronize() are the only points where the host waits.
// - Sequence state lives in pools so that batching, paging and prefix snapshots need no rewrite:
//   lightning states in slots of a LightningStatePool, softmax K/V in fixed-size pages of a KvPool
//   (a session holds one slot and, per softmax layer, a list of page ids). Decode ops take a batch
//   of sessions (B rows, one per session); prefill ops take one session's chunk of T new tokens.
// - Tensor/expert parallelism: the graph calls comm().all_reduce_sum() where partial sums meet;
//   on one device the communicator is a no-op.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "engine/dtype.h"

namespace m1::engine {

struct TensorView;  // engine/checkpoint.h

// A 2-D weight matrix [rows = out, cols = in] as the backend stores it (row-major, dtype as in
// the checkpoint). Vectors (norm weights) are rows = 1.
struct Weight {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;  // device pointer (CPU: into the mmap)
  bool empty() const { return data == nullptr; }
};

// One device allocation; frees itself through its backend.
class Buffer {
 public:
  Buffer() = default;
  Buffer(class Backend* owner, void* data, size_t bytes) : owner_(owner), data_(data), bytes_(bytes) {}
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
  void* data() const { return data_; }
  float* f32() const { return static_cast<float*>(data_); }
  size_t bytes() const { return bytes_; }

 private:
  class Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Sum-reduction across the ranks of a tensor-parallel group. One device: nothing to do.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const { return 0; }
  virtual int world_size() const { return 1; }
  // data: device pointer of n floats, replaced by the sum over ranks.
  virtual void all_reduce_sum(float* data, int64_t n) { (void)data; (void)n; }
};

// Softmax-attention K/V storage: pages of `page_size` tokens, each page holding K and V of one
// layer for all KV heads, laid out [page_size][num_kv_heads][head_dim] (K then V). Page ids are
// indices into the pool; the pool grows on demand and recycles freed pages.
struct KvPoolShape {
  int64_t page_size = 64;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t floats_per_page() const { return 2 * page_size * num_kv_heads * head_dim; }
};

// One session's view of one softmax layer's KV: its pages in order and how many tokens they hold.
struct KvSeq {
  const int32_t* pages = nullptr;  // host array of page ids, ceil(length / page_size) entries
  int64_t length = 0;              // tokens stored (positions 0 .. length-1)
};

// Per-head lightning parameters of one layer.
struct LightningParams {
  int64_t num_heads = 0, head_dim = 0;
  const float* slopes = nullptr;  // host, num_heads entries: decay per step is exp(-slope)
  int64_t block_size = 256;       // prefill block (result independent of it beyond rounding)
};

struct RopeParams {
  int64_t head_dim = 0, rotary_dim = 0;  // rotate dims [0, rotary_dim) of each head, NeoX pairing
  double theta = 1e7;
};

// What a device sampler needs for one draw (engine/sampler.h's rules: mask -> temperature (0 =
// greedy) -> top-k -> top-p -> min-p -> draw; no repetition penalty). `u` is the sampler's uniform
// draw in [0, 1), taken on the host so a seed gives the same stream on every device.
struct DeviceSampling {
  int64_t vocab = 0;               // ids >= vocab are never chosen (the usable vocabulary)
  const uint8_t* mask = nullptr;   // host, mask_len entries (1 = may be chosen); null: all
  int64_t mask_len = 0;            // ids >= mask_len are never chosen when mask is set
  float temperature = 1.f;
  int64_t top_k = 0;
  float top_p = 1.f, min_p = 0.f;
  double u = 0;
};

// The MoE block's weights for one layer. Expert e: w1[e] (gate) and w3[e] (up) are [I, H], w2[e]
// (down) is [H, I].
struct MoeWeights {
  Weight router;  // [E, H]
  std::vector<Weight> w1, w2, w3;
  int64_t top_k = 2;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  Communicator& comm() { return *comm_; }
  void set_communicator(std::shared_ptr<Communicator> c) { comm_ = std::move(c); }

  // ---- memory -------------------------------------------------------------------------------
  virtual Result<Buffer> alloc(size_t bytes) = 0;          // contents undefined
  virtual void free_device(void* data) = 0;                // called by ~Buffer
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Makes a checkpoint tensor usable by the ops. CPU: a view of the mmap (no copy). rows/cols
  // come from the tensor's shape ([n] -> rows 1, cols n).
  virtual Result<Weight> upload_weight(const TensorView& t) = 0;

  // ---- dense ops (T rows of activations) ----------------------------------------------------
  // y[T, W.rows] = x[T, W.cols] @ W^T   (accumulate: y += instead of y =)
  virtual void matmul(const float* x, int64_t T, const Weight& W, float* y, bool accumulate = false) = 0;
  // y[T, H] = E[ids[t], :]; ids is a host array.
  virtual void embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) = 0;
  // y[T, n] = w (.) x * rsqrt(mean(x^2) + eps), row-wise, fp32 (the cast back to the input dtype of
  // m1-model.md §3 is the identity for fp32 activations). y may alias x.
  virtual void rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) = 0;
  // y[n] = alpha * a + beta * b (the postnorm residual). y may alias a or b.
  virtual void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) = 0;
  // The postnorm residual and the next norm in one op: x[T, n] = alpha * a + beta * b, then
  // y[T, n] = rmsnorm(x) with weight w. x may alias a or b; y must not alias x, a or b. Default:
  // axpby then rmsnorm (a backend may fuse them: one pass instead of three).
  virtual void add_rmsnorm(float alpha, const float* a, float beta, const float* b, int64_t T, int64_t n,
                           const Weight& w, float eps, float* x, float* y) {
    axpby(alpha, a, beta, b, T * n, x);
    rmsnorm(x, w, T, n, eps, y);
  }
  // x[n] = SiLU(x[n]) in place.
  virtual void silu(float* x, int64_t n) = 0;
  // y[T, n] = sigmoid(gate[T, n]) (.) x[T, n]; y may alias x or gate.
  virtual void sigmoid_mul(const float* gate, const float* x, int64_t T, int64_t n, float* y) = 0;
  // The lightning layer's output norm and gate in one op: y[T, n] = sigmoid(gate) (.) rmsnorm(x)
  // with weight w. y may alias x. Default: rmsnorm then sigmoid_mul (a backend may fuse them).
  virtual void rmsnorm_sigmoid_gate(const float* x, const Weight& w, int64_t T, int64_t n, float eps,
                                    const float* gate, float* y) {
    rmsnorm(x, w, T, n, eps, y);
    sigmoid_mul(gate, y, T, n, y);
  }

  // ---- lightning attention -------------------------------------------------------------------
  // qkv[T, nh * 3 * hd]: per head h the slice [3hd*h, 3hd*h+hd) is q, then k, then v (already
  // SiLU-ed). state: device [nh, hd, hd] fp32 (k^T v sums, relative to the last processed token),
  // updated in place. out[T, nh * hd] head-major. Chunked form in blocks of p.block_size.
  virtual void lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* state,
                                 float* out) = 0;
  // Decode for B sessions, one token each: qkv[B, nh*3*hd]; states: host array of B device
  // pointers [nh, hd, hd]; out[B, nh*hd]. Recurrent form S = lambda S + k^T v, o = q S.
  virtual void lightning_decode(const float* qkv, int64_t B, const LightningParams& p,
                                float* const* states, float* out) = 0;
  // The same with the feature map: q, k, v in qkv are pre-activation and get SiLU first (qkv may
  // be overwritten). Default: silu in place, then the op (a backend may apply SiLU as it loads).
  virtual void silu_lightning_prefill(float* qkv, int64_t T, const LightningParams& p, float* state, float* out) {
    silu(qkv, T * 3 * p.num_heads * p.head_dim);
    lightning_prefill(qkv, T, p, state, out);
  }
  virtual void silu_lightning_decode(float* qkv, int64_t B, const LightningParams& p, float* const* states,
                                     float* out) {
    silu(qkv, B * 3 * p.num_heads * p.head_dim);
    lightning_decode(qkv, B, p, states, out);
  }

  // ---- softmax attention ----------------------------------------------------------------------
  // x[T, nheads * hd] rotated in place, token t at position positions[t] (host array).
  virtual void rope(float* x, int64_t T, int64_t nheads, const int64_t* positions, const RopeParams& p) = 0;
  // Stores k, v [T, nkv*hd] (K after RoPE) at positions seq.length .. seq.length+T-1 of the pages
  // listed in seq (the caller has listed enough pages). page_base: host array of device pointers,
  // one per page id of the pool.
  virtual void kv_write(float* const* page_base, const KvPoolShape& s, const KvSeq& seq, const float* k,
                        const float* v, int64_t T) = 0;
  // Causal GQA attention of T new queries q[T, nh*hd] at positions seq.length-T .. seq.length-1
  // (their K/V already written) over the seq.length stored tokens; out[T, nh*hd]; scale
  // 1/sqrt(hd). page_base: host array of device pointers, one per page id.
  virtual void attention_prefill(const float* q, int64_t T, int64_t nh, float* const* page_base,
                                 const KvPoolShape& s, const KvSeq& seq, float* out) = 0;
  // One query per session for B sessions: q[B, nh*hd], seqs[B] (each already holds its new token).
  virtual void attention_decode(const float* q, int64_t B, int64_t nh, float* const* page_base,
                                const KvPoolShape& s, const KvSeq* seqs, float* out) = 0;

  // ---- mixture of experts ---------------------------------------------------------------------
  // out[T, H] = sum over the top_k experts of p renormalized w_k * w2(SiLU(w1 x) (.) w3 x), with
  // p = softmax(fp32(router x)). Reads only the weights of experts some token chose.
  virtual void moe(const float* x, int64_t T, const MoeWeights& w, float* out) = 0;

  // ---- optional: benchmark weights, step graphs, device sampling -----------------------------
  // A new [rows, cols] weight of `dtype` filled on the device with normal(mean, std) values from a
  // counter-based generator keyed by `seed` (std 0: every element is `mean`), for benchmark models
  // larger than the disk (`--random-weights`). Default: an error naming the backend.
  virtual Result<Weight> random_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed, float mean, float std) {
    (void)dtype, (void)rows, (void)cols, (void)seed, (void)mean, (void)std;
    return make_error("random weights are not supported on the " + name() + " backend");
  }
  // Step graphs: the caller brackets one step's ops with begin_graph(key) ... end_graph(). A backend
  // that supports it records the ops the first time (CUDA graph capture) and later replays them
  // when the ops come again with the same arguments (host arrays an op receives may differ in
  // content, not in size). Between the two calls no op result may be read on the host and no
  // host copy (copy_to_host/copy_to_device) may be made. begin_graph returns false when ops run as usual;
  // end_graph returns false when a replay was refused because the ops differed from the recorded
  // ones: nothing ran, and the caller walks the same ops again (now recorded).
  virtual bool begin_graph(uint64_t key) { (void)key; return false; }
  virtual bool end_graph() { return true; }
  // Samples one id from logits[n] (device) by `p`; only the id comes back. Backends that can:
  // can_sample() true; others return an error (callers sample on the host).
  virtual bool can_sample() const { return false; }
  virtual Result<int32_t> sample(const float* logits, int64_t n, const DeviceSampling& p) {
    (void)logits, (void)n, (void)p;
    return make_error("device sampling is not supported on the " + name() + " backend");
  }

 protected:
  std::shared_ptr<Communicator> comm_ = std::make_shared<Communicator>();
};

// The dtype and [rows, cols] of a weight tensor as every backend takes it (data left null: the
// backend points it at its copy). Error names the tensor, its file and what was expected.
Result<Weight> describe_weight(const TensorView& t);

// The CPU reference backend (engine/cpu/). Threads: OpenMP over the machine's cores.
std::unique_ptr<Backend> make_cpu_backend();
// The CUDA backend defines this (engine/cuda/); Engine (engine.cpp) reaches it through a weak
// reference, so builds without CUDA link and report "this build has no CUDA backend".
Result<std::unique_ptr<Backend>> make_cuda_backend(int device_index);

inline Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (owner_ && data_) owner_->free_device(data_);
    owner_ = o.owner_; data_ = o.data_; bytes_ = o.bytes_;
    o.owner_ = nullptr; o.data_ = nullptr; o.bytes_ = 0;
  }
  return *this;
}
inline Buffer::~Buffer() {
  if (owner_ && data_) owner_->free_device(data_);
}

}  // namespace m1::engine
