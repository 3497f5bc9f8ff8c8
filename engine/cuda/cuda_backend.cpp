// CudaBackend: engine/backend.h over the kernels of engine/cuda/*.h (see cuda_backend.h).
#include "engine/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/cuda/attention.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/lightning.h"
#include "engine/cuda/moe.h"
#include "engine/cuda/ops.h"

namespace m1::engine {
namespace {

using cuda::WDType;

WDType wdtype(const Weight& w) {
  switch (w.dtype) {
    case DType::F32: return WDType::F32;
    case DType::F16: return WDType::F16;
    case DType::BF16: return WDType::BF16;
    default:
      std::fprintf(stderr, "cuda backend: weight dtype %s reached an op (upload_weight admits F32/F16/BF16)\n",
                   std::string(dtype_name(w.dtype)).c_str());
      std::abort();
  }
}

// A device scratch area that grows on demand (growing waits for the stream: the old contents may
// still be in use by queued kernels).
class Scratch {
 public:
  ~Scratch() { cudaFree(p_); }
  void* get(size_t bytes, cudaStream_t s) {
    if (bytes > cap_) {
      M1_CUDA_CHECK(cudaStreamSynchronize(s));
      cudaFree(p_);
      cap_ = std::max(bytes, cap_ * 3 / 2);
      M1_CUDA_CHECK(cudaMalloc(&p_, cap_));
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& o) : opt_(o) {
    M1_CUDA_CHECK(cudaSetDevice(o.device));
    M1_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    gemm_ = std::make_unique<cuda::Gemm>();
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (void* p : weights_) cudaFree(p);
    gemm_.reset();
    cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda:" + std::to_string(opt_.device); }

  // ---- memory ----
  Result<Buffer> alloc(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return make_error("cuda backend: cannot allocate " + std::to_string(bytes) + " bytes on " + name() + ": " +
                        cudaGetErrorString(e));
    }
    return Buffer(this, p, bytes);
  }
  void free_device(void* data) override {
    cudaStreamSynchronize(stream_);
    cudaFree(data);
  }
  void copy_to_device(void* dst, const void* src, size_t n) override {
    if (!n) return;
    M1_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream_));
    M1_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may reuse src at once
  }
  void copy_to_host(void* dst, const void* src, size_t n) override {
    if (!n) return;
    M1_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream_));
    M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy_device(void* dst, const void* src, size_t n) override {
    if (n) M1_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill_zero(void* dst, size_t n) override {
    if (n) M1_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, stream_));
  }
  void synchronize() override { M1_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  Result<Weight> upload_weight(const TensorView& t) override {
    auto desc = describe_weight(t);
    if (!desc.ok()) return desc.error();
    Weight w = *desc;
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(t.nbytes, 1));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return make_error("cuda backend: out of device memory for tensor '" + t.name + "' (" +
                        std::to_string(t.nbytes) + " bytes)");
    }
    M1_CUDA_CHECK(cudaMemcpy(p, t.data, t.nbytes, cudaMemcpyHostToDevice));
    weights_.push_back(p);
    w.data = p;
    return w;
  }

  // ---- dense ----
  void matmul(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) override {
    const WDType wt = wdtype(W);
    void* cast = wt == WDType::F32 ? nullptr : cast_.get(size_t(T * W.cols) * 2, stream_);
    gemm_->run(x, W.data, wt, y, T, W.rows, W.cols, accumulate, cast, stream_);
  }
  void embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) override {
    const int32_t* d_ids = static_cast<const int32_t*>(upload(ids, size_t(T) * 4));
    cuda::embedding_gather(E.data, wdtype(E), d_ids, y, T, E.cols, E.rows, stream_);
  }
  void rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) override {
    cuda::rmsnorm(x, w.data, wdtype(w), eps, y, T, n, stream_);
  }
  void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) override {
    cuda::axpby(alpha, a, beta, b, n, y, stream_);
  }
  void silu(float* x, int64_t n) override { cuda::silu_inplace(x, n, stream_); }
  void sigmoid_mul(const float* gate, const float* x, int64_t T, int64_t n, float* y) override {
    cuda::sigmoid_mul(gate, x, T * n, y, stream_);
  }

  // ---- lightning ----
  void lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* state, float* out) override {
    if (T <= 0) return;
    const cuda::HeadSlopes sl = slopes(p);
    cuda::StatePtrs sp{};
    sp.p[0] = state;
    const int cu[2] = {0, int(T)};
    const int* d_cu = static_cast<const int*>(upload(cu, sizeof(cu)));
    const int variant = (p.head_dim == 128 && opt_.tensor_core_lightning) ? 1 : 0;
    cuda::lightning_prefill_variant<float>(variant, qkv, d_cu, 1, sp, sl, out, int(p.num_heads), int(p.head_dim),
                                           false, stream_);
  }
  void lightning_decode(const float* qkv, int64_t B, const LightningParams& p, float* const* states,
                        float* out) override {
    const cuda::HeadSlopes sl = slopes(p);
    const int64_t row = p.num_heads * p.head_dim;
    for (int64_t b0 = 0; b0 < B; b0 += cuda::kMaxSessions) {
      const int nb = int(std::min<int64_t>(cuda::kMaxSessions, B - b0));
      cuda::StatePtrs sp{};
      for (int i = 0; i < nb; ++i) sp.p[i] = states[b0 + i];
      cuda::lightning_decode<float>(qkv + b0 * 3 * row, sp, sl, out + b0 * row, nb, int(p.num_heads),
                                    int(p.head_dim), false, stream_);
    }
  }

  // ---- softmax attention ----
  void rope(float* x, int64_t T, int64_t nheads, const int64_t* positions, const RopeParams& p) override {
    const int64_t* d_pos = static_cast<const int64_t*>(upload(positions, size_t(T) * 8));
    cuda::rope_neox(x, d_pos, T, int(nheads), int(p.head_dim), int(p.rotary_dim), float(p.theta), stream_);
  }
  void kv_write(float* const* page_base, const KvPoolShape& s, const KvSeq& seq, const float* k, const float* v,
                int64_t T) override {
    const int64_t npages = (seq.length + T + s.page_size - 1) / s.page_size;
    std::vector<float*> table(size_t(std::max<int64_t>(npages, 1)));
    for (int64_t i = 0; i < npages; ++i) table[size_t(i)] = page_base[seq.pages[i]];
    auto* d_table = static_cast<float* const*>(upload(table.data(), table.size() * sizeof(float*)));
    cuda::PagedKV<float> kv{d_table, int(npages), int(s.page_size), int(s.num_kv_heads), int(s.head_dim)};
    cuda::kv_append<float>(k, v, int(s.num_kv_heads * s.head_dim), int(T), 0, int(seq.length), kv, stream_);
  }
  void attention_prefill(const float* q, int64_t T, int64_t nh, float* const* page_base, const KvPoolShape& s,
                         const KvSeq& seq, float* out) override {
    std::vector<int> qs(static_cast<size_t>(T), 0), ql(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) ql[size_t(t)] = int(seq.length - T + t + 1);
    attention(q, int(T), nh, page_base, s, &seq, 1, qs, ql, int(seq.length), out);
  }
  void attention_decode(const float* q, int64_t B, int64_t nh, float* const* page_base, const KvPoolShape& s,
                        const KvSeq* seqs, float* out) override {
    std::vector<int> qs(static_cast<size_t>(B)), ql(static_cast<size_t>(B));
    int max_len = 1;
    for (int64_t b = 0; b < B; ++b) {
      qs[size_t(b)] = int(b);
      ql[size_t(b)] = int(seqs[b].length);
      max_len = std::max(max_len, int(seqs[b].length));
    }
    attention(q, int(B), nh, page_base, s, seqs, int(B), qs, ql, max_len, out);
  }

  // ---- MoE ----
  void moe(const float* x, int64_t T, const MoeWeights& w, float* out) override {
    if (T <= 0) return;
    const int E = int(w.router.rows), k = int(w.top_k);
    const int64_t H = w.router.cols, I = w.w1.empty() ? 0 : w.w1[0].rows;
    if (E > cuda::kMaxExperts || int(w.w1.size()) != E || int(w.w2.size()) != E || int(w.w3.size()) != E) {
      std::fprintf(stderr, "cuda moe: %d experts (at most %d, one w1/w2/w3 each)\n", E, cuda::kMaxExperts);
      std::abort();
    }
    const WDType wt = wdtype(w.w1[0]);
    cuda::MoeExperts m1{}, m2{}, m3{};
    for (int e = 0; e < E; ++e) {
      if (wdtype(w.w1[e]) != wt || wdtype(w.w2[e]) != wt || wdtype(w.w3[e]) != wt) {
        std::fprintf(stderr, "cuda moe: experts of one layer must share a dtype\n");
        std::abort();
      }
      m1.w[e] = w.w1[e].data;
      m2.w[e] = w.w2[e].data;
      m3.w[e] = w.w3[e].data;
    }
    const int64_t P = T * k;
    // moe_ scratch: logits [T,E] | topk_w [P] | h [P,I] | y [P,H] | ids [P] | off [E+1] | active [E+1] | sorted [P],
    // each part 256-byte aligned (the expert kernels read h with 16-byte vector loads).
    auto al = [](int64_t n) { return size_t((n * 4 + 255) / 256 * 256); };
    const size_t o_tw = al(T * E), o_h = o_tw + al(P), o_y = o_h + al(P * I), o_ids = o_y + al(P * H),
                 o_off = o_ids + al(P), o_act = o_off + al(E + 1), o_sorted = o_act + al(E + 1),
                 total = o_sorted + al(P);
    auto* base = static_cast<unsigned char*>(moe_.get(total, stream_));
    float* logits = reinterpret_cast<float*>(base);
    float* tw = reinterpret_cast<float*>(base + o_tw);
    float* h = reinterpret_cast<float*>(base + o_h);
    float* y = reinterpret_cast<float*>(base + o_y);
    int32_t* ids = reinterpret_cast<int32_t*>(base + o_ids);
    int32_t* off = reinterpret_cast<int32_t*>(base + o_off);
    int32_t* active = reinterpret_cast<int32_t*>(base + o_act);
    int32_t* sorted = reinterpret_cast<int32_t*>(base + o_sorted);
    matmul(x, T, w.router, logits, false);
    cuda::moe_route(logits, T, E, k, tw, ids, off, active, sorted, stream_);
    cuda::moe_experts_gate_up(x, k, m1, m3, wt, E, off, active, sorted, P, h, int(I), int(H), stream_);
    cuda::moe_experts_down(h, m2, wt, E, off, active, sorted, P, y, int(H), int(I), stream_);
    cuda::moe_combine(y, tw, T, k, int(H), out, stream_);
  }

 private:
  cuda::HeadSlopes slopes(const LightningParams& p) {
    if (p.num_heads > cuda::kMaxHeads) {
      std::fprintf(stderr, "cuda lightning: %lld heads (at most %d per device)\n", (long long)p.num_heads,
                   cuda::kMaxHeads);
      std::abort();
    }
    cuda::HeadSlopes s{};
    for (int64_t h = 0; h < p.num_heads; ++h) s.v[h] = p.slopes[h];
    return s;
  }

  // Copies host bytes into the upload scratch (stream-ordered: earlier readers of it are done).
  void* upload(const void* src, size_t n) {
    void* d = upload_.get(std::max<size_t>(n, 16), stream_);
    if (n) M1_CUDA_CHECK(cudaMemcpyAsync(d, src, n, cudaMemcpyHostToDevice, stream_));
    return d;
  }

  void attention(const float* q, int NQ, int64_t nh, float* const* page_base, const KvPoolShape& s,
                 const KvSeq* seqs, int nseq, const std::vector<int>& qs, const std::vector<int>& ql, int max_len,
                 float* out) {
    int max_pages = 1;
    for (int i = 0; i < nseq; ++i)
      max_pages = std::max<int>(max_pages, int((seqs[i].length + s.page_size - 1) / s.page_size));
    // one upload: page table [nseq, max_pages] | q_seq [NQ] | q_len [NQ]
    const size_t tbytes = size_t(nseq) * max_pages * sizeof(float*);
    std::vector<unsigned char> host(tbytes + size_t(NQ) * 8);
    auto* table = reinterpret_cast<float**>(host.data());
    for (int i = 0; i < nseq; ++i) {
      const int np = int((seqs[i].length + s.page_size - 1) / s.page_size);
      for (int p = 0; p < max_pages; ++p) table[size_t(i) * max_pages + p] = p < np ? page_base[seqs[i].pages[p]] : nullptr;
    }
    std::memcpy(host.data() + tbytes, qs.data(), size_t(NQ) * 4);
    std::memcpy(host.data() + tbytes + size_t(NQ) * 4, ql.data(), size_t(NQ) * 4);
    auto* d = static_cast<unsigned char*>(upload(host.data(), host.size()));
    cuda::PagedKV<float> kv{reinterpret_cast<float* const*>(d), max_pages, int(s.page_size), int(s.num_kv_heads),
                            int(s.head_dim)};
    void* ws = attn_ws_.get(cuda::attention_workspace_bytes(NQ, int(nh), int(s.head_dim), max_len), stream_);
    cuda::attention_paged<float>(q, int(nh * s.head_dim), reinterpret_cast<const int*>(d + tbytes),
                                 reinterpret_cast<const int*>(d + tbytes + size_t(NQ) * 4), NQ, int(nh), max_len, kv,
                                 1.f / std::sqrt(float(s.head_dim)), out, ws, stream_);
  }

  CudaOptions opt_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Gemm> gemm_;
  std::vector<void*> weights_;
  Scratch cast_, upload_, attn_ws_, moe_;
};

}  // namespace

// The entry point engine.cpp reaches (weakly) for `--device cuda[:N]`.
Result<std::unique_ptr<Backend>> make_cuda_backend(int device_index) {
  CudaOptions o;
  o.device = device_index;
  return make_cuda_backend(o);
}

Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaOptions& opt) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    return make_error(std::string("no CUDA device available (") +
                      (e == cudaSuccess ? "none found" : cudaGetErrorString(e)) + "); use --device cpu");
  }
  if (opt.device < 0 || opt.device >= n)
    return make_error("CUDA device " + std::to_string(opt.device) + " does not exist (" + std::to_string(n) +
                      " present)");
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(opt));
}

}  // namespace m1::engine
