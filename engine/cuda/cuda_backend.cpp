// CudaBackend: memory, weight upload and the model ops over the kernels of engine/cuda/*.h (see
// cuda_backend.h and cuda_backend_impl.h). Every op first uploads the host arrays it needs, then
// passes gate() (which, during a graph replay, compares instead of launching), then launches.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/cuda/attention.h"
#include "engine/cuda/cuda_backend_impl.h"
#include "engine/cuda/moe.h"
#include "engine/cuda/ops.h"

namespace m1::engine {
namespace cuda_impl {
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

const char* dtype_tag(const Weight& w) { return w.dtype == DType::BF16 ? "bf16" : w.dtype == DType::F16 ? "f16" : "f32"; }
double wbytes(const Weight& w) { return double(w.rows) * double(w.cols) * double(dtype_size(w.dtype)); }

constexpr size_t kStageBytes = size_t(64) << 20;  // pinned staging chunk for weight uploads
constexpr int64_t kPageBucket = 16;               // page tables padded to multiples of this
constexpr int64_t kMoeGemmTokens = 64;            // MoE on per-expert tensor-core GEMMs from here
constexpr int64_t kTcAttentionRows = 16;          // attention prefill on tensor cores from here

int64_t bucket_pages(int64_t n) { return std::max<int64_t>(kPageBucket, (n + kPageBucket - 1) / kPageBucket * kPageBucket); }

}  // namespace

CudaBackend::CudaBackend(const CudaOptions& o) : opt_(o) {
  M1_CUDA_CHECK(cudaSetDevice(o.device));
  M1_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<cuda::Gemm>();
  // One-row products (decode) through the own GEMV: on an H200 it matched or beat cuBLASLt at M = 1
  // for every M1 projection (out_proj 37.7 vs 42.4 us, lm_head 568 vs 580 us) and skips the
  // activation cast launch; M = 4 stays on cuBLASLt (2-3x faster there). bench/NOTES.md.
  gemm_->set_gemv_rows(1);
  bytes_now_ = bytes_peak_ = 32u << 20;  // the GEMM workspace
  M1_CUDA_CHECK(cudaMalloc(&id_dev_, 64));
  M1_CUDA_CHECK(cudaMallocHost(&id_host_, 64));
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  drop_graphs();
  for (void* p : weights_) dev_free(p);
  for (int i = 0; i < 2; ++i) {
    if (stage_[i]) cudaFreeHost(stage_[i]);
    if (stage_done_[i]) cudaEventDestroy(stage_done_[i]);
  }
  for (cudaEvent_t e : event_pool_) cudaEventDestroy(e);
  for (auto& r : prof_) { if (r.a) cudaEventDestroy(r.a); if (r.b) cudaEventDestroy(r.b); }
  cudaFree(mask_dev_);
  cudaFree(id_dev_);
  cudaFreeHost(id_host_);
  gemm_.reset();
  cudaStreamDestroy(stream_);
}

// ---- memory ---------------------------------------------------------------------------------

Result<Buffer> CudaBackend::alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return make_error("cuda backend: cannot allocate " + std::to_string(bytes) + " bytes on " + name() + ": " +
                      cudaGetErrorString(e));
  }
  sizes_[p] = std::max<size_t>(bytes, 1);
  bytes_now_ += sizes_[p];
  bytes_peak_ = std::max(bytes_peak_, bytes_now_);
  return Buffer(this, p, bytes);
}

void CudaBackend::free_device(void* data) {
  cudaStreamSynchronize(stream_);
  dev_free(data);
}

void* CudaBackend::dev_malloc(size_t bytes) {
  void* p = nullptr;
  M1_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
  sizes_[p] = std::max<size_t>(bytes, 1);
  bytes_now_ += sizes_[p];
  bytes_peak_ = std::max(bytes_peak_, bytes_now_);
  return p;
}

void CudaBackend::dev_free(void* p) {
  if (!p) return;
  auto it = sizes_.find(p);
  if (it != sizes_.end()) {
    bytes_now_ -= it->second;
    sizes_.erase(it);
  }
  cudaFree(p);
}

// Host copies synchronize the stream, which a captured step graph cannot contain.
void CudaBackend::require_eager(const char* op) const {
  if (mode_ == Mode::Eager) return;
  std::fprintf(stderr, "cuda backend: %s inside a step graph (the graph contract forbids it)\n", op);
  std::abort();
}

void CudaBackend::copy_to_device(void* dst, const void* src, size_t n) {
  if (!n) return;
  require_eager("copy_to_device");
  M1_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream_));
  M1_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may reuse src at once
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t n) {
  if (!n) return;
  require_eager("copy_to_host");
  M1_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream_));
  M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_device(void* dst, const void* src, size_t n) {
  if (!n || !gate("copy_device", dst, src, n)) return;
  Prof pr(this, "copy_device", 2.0 * double(n), 0);
  M1_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::fill_zero(void* dst, size_t n) {
  if (!n || !gate("fill_zero", dst, n)) return;
  M1_CUDA_CHECK(cudaMemsetAsync(dst, 0, n, stream_));
}

void CudaBackend::synchronize() { M1_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

// Large tensors go through two pinned 64 MB buffers: the host copies chunk i+1 out of the memory
// map (OpenMP over 4 MB pieces) while the DMA engine moves chunk i; small ones are copied directly.
Result<Weight> CudaBackend::upload_weight(const TensorView& t) {
  auto desc = describe_weight(t);
  if (!desc.ok()) return desc.error();
  Weight w = *desc;
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(t.nbytes, 1));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return make_error("cuda backend: out of device memory for tensor '" + t.name + "' (" + std::to_string(t.nbytes) +
                      " bytes)");
  }
  sizes_[p] = std::max<size_t>(t.nbytes, 1);
  bytes_now_ += sizes_[p];
  bytes_peak_ = std::max(bytes_peak_, bytes_now_);
  weights_.push_back(p);
  if (t.nbytes < (size_t(4) << 20)) {
    M1_CUDA_CHECK(cudaMemcpy(p, t.data, t.nbytes, cudaMemcpyHostToDevice));
  } else {
    for (int i = 0; i < 2; ++i)
      if (!stage_[i]) {
        M1_CUDA_CHECK(cudaMallocHost(&stage_[i], kStageBytes));
        M1_CUDA_CHECK(cudaEventCreateWithFlags(&stage_done_[i], cudaEventDisableTiming));
        M1_CUDA_CHECK(cudaEventRecord(stage_done_[i], stream_));
      }
    const std::byte* src = t.data;
    auto* dst = static_cast<std::byte*>(p);
    for (size_t off = 0, i = 0; off < t.nbytes; off += kStageBytes, ++i) {
      const size_t n = std::min(kStageBytes, t.nbytes - off);
      const int b = int(i % 2);
      M1_CUDA_CHECK(cudaEventSynchronize(stage_done_[b]));  // its previous DMA is done
      auto* stage = static_cast<std::byte*>(stage_[b]);
      const int64_t pieces = int64_t((n + (size_t(4) << 20) - 1) >> 22);
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < pieces; ++k) {
        const size_t o = size_t(k) << 22;
        std::memcpy(stage + o, src + off + o, std::min(size_t(4) << 20, n - o));
      }
      M1_CUDA_CHECK(cudaMemcpyAsync(dst + off, stage, n, cudaMemcpyHostToDevice, stream_));
      M1_CUDA_CHECK(cudaEventRecord(stage_done_[b], stream_));
    }
    M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  w.data = p;
  return w;
}

Result<Weight> CudaBackend::random_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed, float mean,
                                          float std) {
  Weight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    return make_error("random weights: dtype " + std::string(dtype_name(dtype)) + " unsupported (f32, f16, bf16)");
  const size_t n = size_t(rows * cols), bytes = n * dtype_size(dtype);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return make_error("cuda backend: out of device memory for a random weight of " + std::to_string(bytes) +
                      " bytes (" + std::to_string(bytes_now_ >> 20) + " MiB held)");
  }
  sizes_[p] = std::max<size_t>(bytes, 1);
  bytes_now_ += sizes_[p];
  bytes_peak_ = std::max(bytes_peak_, bytes_now_);
  weights_.push_back(p);
  cuda::fill_normal(p, wdtype(w), int64_t(n), seed, mean, std, stream_);
  w.data = p;
  return w;
}

// ---- dense ----------------------------------------------------------------------------------

void CudaBackend::gemm(const float* x, int64_t M, const Weight& W, float* y, bool accumulate) {
  const WDType wt = wdtype(W);
  void* cast = wt == WDType::F32 ? nullptr : cast_.get(size_t(M * W.cols) * 2);
  gemm_->run(x, W.data, wt, y, M, W.rows, W.cols, accumulate, cast, stream_);
}

void CudaBackend::matmul(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) {
  if (!gate("matmul", x, T, W.data, W.rows, W.cols, W.dtype, y, accumulate)) return;
  Prof pr(this, "matmul", wbytes(W) + 4.0 * double(T) * double(W.rows + W.cols),
          2.0 * double(T) * double(W.rows) * double(W.cols), W.rows, W.cols, dtype_tag(W));
  gemm(x, T, W, y, accumulate);
}

void CudaBackend::embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) {
  const int32_t* d_ids = static_cast<const int32_t*>(upload(ids, size_t(T) * 4));
  if (!gate("embedding", E.data, E.rows, E.cols, E.dtype, T, y)) return;
  Prof pr(this, "embedding", double(T) * double(E.cols) * (4.0 + dtype_size(E.dtype)), 0);
  cuda::embedding_gather(E.data, wdtype(E), d_ids, y, T, E.cols, E.rows, stream_);
}

void CudaBackend::rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) {
  if (!gate("rmsnorm", x, w.data, w.dtype, T, n, eps, y)) return;
  Prof pr(this, "rmsnorm", 8.0 * double(T) * double(n), 0);
  cuda::rmsnorm(x, w.data, wdtype(w), eps, y, T, n, stream_);
}

void CudaBackend::axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) {
  if (!gate("axpby", alpha, a, beta, b, n, y)) return;
  Prof pr(this, "axpby", 12.0 * double(n), 0);
  cuda::axpby(alpha, a, beta, b, n, y, stream_);
}

void CudaBackend::add_rmsnorm(float alpha, const float* a, float beta, const float* b, int64_t T, int64_t n,
                              const Weight& w, float eps, float* x, float* y) {
  if (!gate("add_rmsnorm", alpha, a, beta, b, T, n, w.data, w.dtype, eps, x, y)) return;
  Prof pr(this, "add_rmsnorm", 16.0 * double(T) * double(n), 0);
  cuda::rmsnorm_residual(a, b, alpha, beta, w.data, wdtype(w), eps, y, x, T, n, stream_);
}

void CudaBackend::silu(float* x, int64_t n) {
  if (!gate("silu", x, n)) return;
  Prof pr(this, "silu", 8.0 * double(n), 0);
  cuda::silu_inplace(x, n, stream_);
}

void CudaBackend::sigmoid_mul(const float* gate_in, const float* x, int64_t T, int64_t n, float* y) {
  if (!gate("sigmoid_mul", gate_in, x, T, n, y)) return;
  Prof pr(this, "sigmoid_mul", 12.0 * double(T) * double(n), 0);
  cuda::sigmoid_mul(gate_in, x, T * n, y, stream_);
}

// ---- lightning ------------------------------------------------------------------------------

cuda::HeadSlopes CudaBackend::slopes(const LightningParams& p) {
  if (p.num_heads > cuda::kMaxHeads) {
    std::fprintf(stderr, "cuda lightning: %lld heads (at most %d per device)\n", (long long)p.num_heads,
                 cuda::kMaxHeads);
    std::abort();
  }
  cuda::HeadSlopes s{};
  for (int64_t h = 0; h < p.num_heads; ++h) s.v[h] = p.slopes[h];
  return s;
}

void CudaBackend::rmsnorm_sigmoid_gate(const float* x, const Weight& w, int64_t T, int64_t n, float eps,
                                       const float* gate_in, float* y) {
  if (!gate("rmsnorm_sigmoid_gate", x, w.data, w.dtype, T, n, eps, gate_in, y)) return;
  Prof pr(this, "rmsnorm_sigmoid_gate", 12.0 * double(T) * double(n), 0);
  cuda::rmsnorm_sigmoid_gate(x, w.data, wdtype(w), eps, gate_in, y, T, n, stream_);
}

void CudaBackend::lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* state, float* out) {
  lightning_prefill_impl(qkv, T, p, state, out, false);
}

void CudaBackend::silu_lightning_prefill(float* qkv, int64_t T, const LightningParams& p, float* state, float* out) {
  lightning_prefill_impl(qkv, T, p, state, out, true);
}

void CudaBackend::lightning_decode(const float* qkv, int64_t B, const LightningParams& p, float* const* states,
                                   float* out) {
  lightning_decode_impl(qkv, B, p, states, out, false);
}

void CudaBackend::silu_lightning_decode(float* qkv, int64_t B, const LightningParams& p, float* const* states,
                                        float* out) {
  lightning_decode_impl(qkv, B, p, states, out, true);
}

void CudaBackend::lightning_prefill_impl(const float* qkv, int64_t T, const LightningParams& p, float* state,
                                         float* out, bool silu) {
  if (T <= 0) return;
  const cuda::HeadSlopes sl = slopes(p);
  const int cu[2] = {0, int(T)};
  const int* d_cu = static_cast<const int*>(upload(cu, sizeof(cu)));
  // Variant 3 (8 warps per CTA, bench/NOTES.md): the fastest tensor-core form for head_dim 128.
  const int variant = (p.head_dim == 128 && opt_.tensor_core_lightning) ? 3 : 0;
  if (!gate("lightning_prefill", qkv, T, p.num_heads, p.head_dim, Span{sl.v, size_t(p.num_heads) * 4}, state, out,
            variant, silu))
    return;
  const double hd = double(p.head_dim), nh = double(p.num_heads);
  Prof pr(this, "lightning_prefill", 8.0 * nh * hd * hd + 16.0 * double(T) * nh * hd,
          double(T) * nh * (4.0 * hd * hd + 4.0 * 64.0 * hd));
  cuda::StatePtrs sp{};
  sp.p[0] = state;
  cuda::lightning_prefill_variant<float>(variant, qkv, d_cu, 1, sp, sl, out, int(p.num_heads), int(p.head_dim), silu,
                                         stream_);
}

void CudaBackend::lightning_decode_impl(const float* qkv, int64_t B, const LightningParams& p, float* const* states,
                                        float* out, bool silu) {
  const cuda::HeadSlopes sl = slopes(p);
  const int64_t row = p.num_heads * p.head_dim;
  for (int64_t b0 = 0; b0 < B; b0 += cuda::kMaxSessions) {
    const int nb = int(std::min<int64_t>(cuda::kMaxSessions, B - b0));
    cuda::StatePtrs sp{};
    for (int i = 0; i < nb; ++i) sp.p[i] = states[b0 + i];
    if (!gate("lightning_decode", qkv, b0, nb, p.num_heads, p.head_dim, Span{sl.v, size_t(p.num_heads) * 4},
              Span{sp.p, size_t(nb) * sizeof(float*)}, out, silu))
      continue;
    Prof pr(this, "lightning_decode", 8.0 * double(nb) * double(row) * double(p.head_dim) + 16.0 * double(nb * row), 0);
    cuda::lightning_decode<float>(qkv + b0 * 3 * row, sp, sl, out + b0 * row, nb, int(p.num_heads), int(p.head_dim),
                                  silu, stream_);
  }
}

// ---- softmax attention ----------------------------------------------------------------------

void CudaBackend::rope(float* x, int64_t T, int64_t nheads, const int64_t* positions, const RopeParams& p) {
  const int64_t* d_pos = static_cast<const int64_t*>(upload(positions, size_t(T) * 8));
  if (!gate("rope", x, T, nheads, p.head_dim, p.rotary_dim, p.theta)) return;
  Prof pr(this, "rope", 8.0 * double(T) * double(nheads) * double(p.rotary_dim), 0);
  cuda::rope_neox(x, d_pos, T, int(nheads), int(p.head_dim), int(p.rotary_dim), float(p.theta), stream_);
}

void CudaBackend::kv_write(float* const* page_base, const KvPoolShape& s, const KvSeq& seq, const float* k,
                           const float* v, int64_t T) {
  const int64_t npages = (seq.length + T + s.page_size - 1) / s.page_size, padded = bucket_pages(npages);
  // one upload: page table [padded] | positions [T]
  std::vector<unsigned char> host(size_t(padded) * sizeof(float*) + size_t(T) * 8, 0);
  auto* table = reinterpret_cast<float**>(host.data());
  for (int64_t i = 0; i < npages; ++i) table[i] = page_base[seq.pages[i]];
  auto* pos = reinterpret_cast<int64_t*>(host.data() + size_t(padded) * sizeof(float*));
  for (int64_t t = 0; t < T; ++t) pos[t] = seq.length + t;
  auto* d = static_cast<unsigned char*>(upload(host.data(), host.size()));
  if (!gate("kv_write", k, v, T, s.page_size, s.num_kv_heads, s.head_dim, padded)) return;
  Prof pr(this, "kv_write", 16.0 * double(T) * double(s.num_kv_heads * s.head_dim), 0);
  cuda::PagedKV<float> kv{reinterpret_cast<float* const*>(d), int(padded), int(s.page_size), int(s.num_kv_heads),
                          int(s.head_dim)};
  cuda::kv_append_at<float>(k, v, int(s.num_kv_heads * s.head_dim), int(T), 0,
                            reinterpret_cast<const int64_t*>(d + size_t(padded) * sizeof(float*)), kv, stream_);
}

void CudaBackend::attention_prefill(const float* q, int64_t T, int64_t nh, float* const* page_base,
                                    const KvPoolShape& s, const KvSeq& seq, float* out) {
  if (opt_.tensor_core_attention && T >= kTcAttentionRows &&
      cuda::attention_prefill_tc_supported(int(s.head_dim), int(nh), int(s.num_kv_heads))) {
    const int64_t npages = (seq.length + s.page_size - 1) / s.page_size;
    std::vector<float*> table(size_t(std::max<int64_t>(npages, 1)), nullptr);
    for (int64_t i = 0; i < npages; ++i) table[size_t(i)] = page_base[seq.pages[i]];
    auto* d = static_cast<float* const*>(upload(table.data(), table.size() * sizeof(float*)));
    if (!gate("attention_prefill_tc", q, T, nh, s.page_size, s.num_kv_heads, s.head_dim, seq.length, out)) return;
    const double d_ = double(s.head_dim), past = double(seq.length - T);
    Prof pr(this, "attention_prefill_tc", 8.0 * double(seq.length) * double(s.num_kv_heads) * d_ + 8.0 * double(T) * double(nh) * d_,
            4.0 * double(nh) * d_ * double(T) * (past + double(T + 1) / 2.0));
    cuda::PagedKV<float> kv{d, int(npages), int(s.page_size), int(s.num_kv_heads), int(s.head_dim)};
    cuda::attention_prefill_tc(q, int(nh * s.head_dim), int(T), int(nh), int(seq.length - T), kv,
                               1.f / std::sqrt(float(s.head_dim)), out, stream_);
    return;
  }
  std::vector<int> qs(static_cast<size_t>(T), 0), ql(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ql[size_t(t)] = int(seq.length - T + t + 1);
  attention(q, int(T), nh, page_base, s, &seq, 1, qs, ql, int(seq.length), out);
}

void CudaBackend::attention_decode(const float* q, int64_t B, int64_t nh, float* const* page_base,
                                   const KvPoolShape& s, const KvSeq* seqs, float* out) {
  std::vector<int> qs(static_cast<size_t>(B)), ql(static_cast<size_t>(B));
  int max_len = 1;
  for (int64_t b = 0; b < B; ++b) {
    qs[size_t(b)] = int(b);
    ql[size_t(b)] = int(seqs[b].length);
    max_len = std::max(max_len, int(seqs[b].length));
  }
  attention(q, int(B), nh, page_base, s, seqs, int(B), qs, ql, max_len, out);
}

// Page tables are padded to buckets (kPageBucket pages) and the grid is sized by the bucket, so
// the launch is the same for every length inside it (graph replay); unused splits are empty.
void CudaBackend::attention(const float* q, int NQ, int64_t nh, float* const* page_base, const KvPoolShape& s,
                            const KvSeq* seqs, int nseq, const std::vector<int>& qs, const std::vector<int>& ql,
                            int max_len, float* out) {
  int64_t max_pages = 1;
  for (int i = 0; i < nseq; ++i)
    max_pages = std::max<int64_t>(max_pages, (seqs[i].length + s.page_size - 1) / s.page_size);
  max_pages = bucket_pages(max_pages);
  const int grid_len = int(std::max<int64_t>(max_len, max_pages * s.page_size));
  // one upload: page table [nseq, max_pages] | q_seq [NQ] | q_len [NQ]
  const size_t tbytes = size_t(nseq) * size_t(max_pages) * sizeof(float*);
  std::vector<unsigned char> host(tbytes + size_t(NQ) * 8, 0);
  auto* table = reinterpret_cast<float**>(host.data());
  for (int i = 0; i < nseq; ++i) {
    const int64_t np = (seqs[i].length + s.page_size - 1) / s.page_size;
    for (int64_t p = 0; p < np; ++p) table[size_t(i) * size_t(max_pages) + size_t(p)] = page_base[seqs[i].pages[p]];
  }
  std::memcpy(host.data() + tbytes, qs.data(), size_t(NQ) * 4);
  std::memcpy(host.data() + tbytes + size_t(NQ) * 4, ql.data(), size_t(NQ) * 4);
  auto* d = static_cast<unsigned char*>(upload(host.data(), host.size()));
  if (!gate("attention", q, NQ, nh, s.page_size, s.num_kv_heads, s.head_dim, nseq, max_pages, grid_len, out)) return;
  double kv_bytes = 0;
  for (int i = 0; i < NQ; ++i) kv_bytes += double(ql[size_t(i)]);
  Prof pr(this, NQ == nseq ? "attention_decode" : "attention_prefill_rows",
          8.0 * kv_bytes * double(s.num_kv_heads * s.head_dim) / double(std::max(1, NQ / nseq)),
          4.0 * kv_bytes * double(nh * s.head_dim));
  cuda::PagedKV<float> kv{reinterpret_cast<float* const*>(d), int(max_pages), int(s.page_size), int(s.num_kv_heads),
                          int(s.head_dim)};
  void* ws = attn_ws_.get(cuda::attention_workspace_bytes(NQ, int(nh), int(s.head_dim), grid_len));
  cuda::attention_paged<float>(q, int(nh * s.head_dim), reinterpret_cast<const int*>(d + tbytes),
                               reinterpret_cast<const int*>(d + tbytes + size_t(NQ) * 4), NQ, int(nh), grid_len, kv,
                               1.f / std::sqrt(float(s.head_dim)), out, ws, stream_);
}

// ---- MoE ------------------------------------------------------------------------------------

namespace {
// moe_ scratch of the decode path: logits [T,E] | topk_w [P] | h [P,I] | y [P,H] | ids [P] |
// off [E+1] | active [E+1] | sorted [P]; of the GEMM path additionally xs/ys [P,H] | h3 [P,I] |
// inv [P]. Each part 256-byte aligned (the expert kernels read h with 16-byte vector loads).
// `total` sizes the one allocation; carve() hands out the typed pointers into it.
struct MoeScratch {
  float *logits, *tw, *h, *y, *h3;
  int32_t *ids, *off, *active, *sorted, *inv;
};
struct MoeLayout {
  size_t tw, h, y, ids, off, act, sorted, h3, inv, total;
  MoeScratch carve(void* base) const {
    auto* b = static_cast<unsigned char*>(base);
    auto f = [&](size_t o) { return reinterpret_cast<float*>(b + o); };
    auto i = [&](size_t o) { return reinterpret_cast<int32_t*>(b + o); };
    return {f(0), f(tw), f(h), f(y), f(h3), i(ids), i(off), i(act), i(sorted), i(inv)};
  }
};
size_t al(int64_t n) { return size_t((n * 4 + 255) / 256 * 256); }
MoeLayout moe_layout(int64_t T, int64_t E, int64_t k, int64_t H, int64_t I, bool grouped) {
  const int64_t P = T * k;
  MoeLayout l{};
  l.tw = al(T * E);
  l.h = l.tw + al(P);
  l.y = l.h + al(P * I);
  l.ids = l.y + al(P * H);
  l.off = l.ids + al(P);
  l.act = l.off + al(E + 1);
  l.sorted = l.act + al(E + 1);
  l.h3 = l.sorted + al(P);
  l.inv = l.h3 + (grouped ? al(P * I) : 0);
  l.total = l.inv + (grouped ? al(P) : 0);
  return l;
}
}  // namespace

void CudaBackend::moe(const float* x, int64_t T, const MoeWeights& w, float* out) {
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
  const size_t eb = size_t(E) * sizeof(void*);
  if (!gate("moe", x, T, w.router.data, w.router.dtype, H, I, E, k, wt, Span{m1.w, eb}, Span{m2.w, eb}, Span{m3.w, eb},
            out))
    return;
  if (T >= kMoeGemmTokens && mode_ == Mode::Eager) {
    moe_grouped_gemm(x, T, w, out);
    return;
  }
  const double expert_bytes = 3.0 * double(I) * double(H) * double(dtype_size(w.w1[0].dtype));
  Prof pr(this, T == 1 ? "moe (1 token)" : "moe (grouped GEMV)",
          wbytes(w.router) + expert_bytes * double(std::min<int64_t>(E, T * k)) + 8.0 * double(T * H),
          2.0 * double(T) * double(E) * double(H) + 6.0 * double(T * k) * double(I) * double(H));
  const int64_t P = T * k;
  const MoeLayout l = moe_layout(T, E, k, H, I, false);
  const MoeScratch m = l.carve(moe_.get(l.total));
  gemm(x, T, w.router, m.logits, false);
  cuda::moe_route(m.logits, T, E, k, m.tw, m.ids, m.off, m.active, m.sorted, stream_);
  cuda::moe_experts_gate_up(x, k, m1, m3, wt, E, m.off, m.active, m.sorted, P, m.h, int(I), int(H), stream_);
  cuda::moe_experts_down(m.h, m2, wt, E, m.off, m.active, m.sorted, P, m.y, int(H), int(I), stream_);
  cuda::moe_combine(m.y, m.tw, T, k, int(H), out, stream_);
}

// Prefill-sized MoE: route on the device, read the per-expert counts back (one sync per layer and
// chunk), gather each expert's rows, and run its three projections as cuBLASLt GEMMs.
void CudaBackend::moe_grouped_gemm(const float* x, int64_t T, const MoeWeights& w, float* out) {
  const int E = int(w.router.rows), k = int(w.top_k);
  const int64_t H = w.router.cols, I = w.w1[0].rows, P = T * k;
  const MoeLayout l = moe_layout(T, E, k, H, I, true);
  const MoeScratch m = l.carve(moe_.get(l.total));
  float *logits = m.logits, *tw = m.tw, *h1 = m.h, *h3 = m.h3;
  float* xs = m.y;  // gathered rows, then the down outputs
  int32_t *ids = m.ids, *off = m.off, *active = m.active, *sorted = m.sorted, *inv = m.inv;
  const double es = double(dtype_size(w.w1[0].dtype)), fP = double(P), fH = double(H), fI = double(I);
  std::vector<int32_t> offs(size_t(E) + 1);
  {
    Prof pr(this, "moe prefill: router + route + sync", wbytes(w.router) + 4.0 * double(T) * fH,
            2.0 * double(T) * double(E) * fH);
    gemm(x, T, w.router, logits, false);
    cuda::moe_route(logits, T, E, k, tw, ids, off, active, sorted, stream_);
    M1_CUDA_CHECK(cudaMemcpyAsync(offs.data(), off, offs.size() * 4, cudaMemcpyDeviceToHost, stream_));
    M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  int experts = 0;
  for (int e = 0; e < E; ++e) experts += offs[size_t(e) + 1] > offs[size_t(e)];
  {
    Prof pr(this, "moe prefill: gather rows", 8.0 * fP * fH, 0);
    cuda::moe_gather_rows(x, sorted, k, P, int(H), xs, stream_);
  }
  {
    Prof pr(this, "moe prefill: gate+up GEMMs", 2.0 * experts * fI * fH * es + fP * (4.0 * fH + 8.0 * fI),
            4.0 * fP * fI * fH);
    for (int e = 0; e < E; ++e) {
      const int64_t b = offs[size_t(e)], n = offs[size_t(e) + 1] - b;
      if (n <= 0) continue;
      gemm(xs + b * H, n, w.w1[size_t(e)], h1 + b * I, false);
      gemm(xs + b * H, n, w.w3[size_t(e)], h3 + b * I, false);
    }
  }
  {
    Prof pr(this, "moe prefill: silu*up", 12.0 * fP * fI, 0);
    cuda::silu_mul(h1, h3, P * I, h1, stream_);
  }
  {
    Prof pr(this, "moe prefill: down GEMMs", experts * fI * fH * es + fP * (4.0 * fI + 4.0 * fH), 2.0 * fP * fI * fH);
    for (int e = 0; e < E; ++e) {
      const int64_t b = offs[size_t(e)], n = offs[size_t(e) + 1] - b;
      if (n <= 0) continue;
      gemm(h1 + b * I, n, w.w2[size_t(e)], xs + b * H, false);
    }
  }
  Prof pr(this, "moe prefill: combine", 4.0 * fP * fH + 4.0 * double(T) * fH, 0);
  cuda::moe_combine_sorted(xs, sorted, tw, T, k, int(H), out, inv, stream_);
}

}  // namespace cuda_impl

CudaControl* cuda_control(Backend& b) { return dynamic_cast<cuda_impl::CudaBackend*>(&b); }

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
  return std::unique_ptr<Backend>(std::make_unique<cuda_impl::CudaBackend>(opt));
}

}  // namespace m1::engine
