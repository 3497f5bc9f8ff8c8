// CpuBackend: the reference implementation of engine/backend.h. Plain loops (vectorized by the
// compiler through `omp simd` or written with vector types), split across cores by a thread pool
// (parallel.h), OpenBLAS sgemm for prefill-sized matmuls where it is present (M1_HAVE_CBLAS).
// Weights stay in the checkpoint's memory map and are converted to fp32 in small tiles inside the
// kernels, so bf16/fp16/fp32 checkpoints all compute in fp32.
// defines: CpuBackend (dense.cpp: memory, matmul, norms, elementwise; gemv.cpp: the decode
// kernel; attention.cpp: lightning, rope, KV pages, softmax attention; moe.cpp: router + experts;
// sample.cpp: sampling from the last logits in place; parallel.h: the thread pool all of them
// split their loops over).
#pragma once
#include "engine/backend.h"

namespace m1::engine::cpu {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Result<Buffer> alloc(size_t bytes) override;
  void free_device(void* data) override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy_device(void* dst, const void* src, size_t bytes) override;
  void fill_zero(void* dst, size_t bytes) override;
  void synchronize() override {}
  Result<Weight> upload_weight(const TensorView& t) override;

  void matmul(const float* x, int64_t T, const Weight& W, float* y, bool accumulate) override;
  void embedding(const Weight& E, const int32_t* ids, int64_t T, float* y) override;
  void rmsnorm(const float* x, const Weight& w, int64_t T, int64_t n, float eps, float* y) override;
  void axpby(float alpha, const float* a, float beta, const float* b, int64_t n, float* y) override;
  void silu(float* x, int64_t n) override;
  void sigmoid_mul(const float* gate, const float* x, int64_t T, int64_t n, float* y) override;

  void lightning_prefill(const float* qkv, int64_t T, const LightningParams& p, float* state,
                         float* out) override;
  void lightning_decode(const float* qkv, int64_t B, const LightningParams& p, float* const* states,
                        float* out) override;
  void rope(float* x, int64_t T, int64_t nheads, const int64_t* positions, const RopeParams& p) override;
  void kv_write(float* const* page_base, const KvPoolShape& s, const KvSeq& seq, const float* k,
                const float* v, int64_t T) override;
  void attention_prefill(const float* q, int64_t T, int64_t nh, float* const* page_base,
                         const KvPoolShape& s, const KvSeq& seq, float* out) override;
  void attention_decode(const float* q, int64_t B, int64_t nh, float* const* page_base,
                        const KvPoolShape& s, const KvSeq* seqs, float* out) override;
  void moe(const float* x, int64_t T, const MoeWeights& w, float* out) override;

  // sample.cpp: the logits are already in host memory, so sampling here saves copying them out.
  bool can_sample() const override { return true; }
  Result<int32_t> sample(const float* logits, int64_t n, const DeviceSampling& p) override;
};

// Row r, columns [c0, c0 + n) of W converted to fp32 into dst (the kernels' one conversion path).
void load_row(const Weight& W, int64_t r, int64_t c0, int64_t n, float* dst);

// The decode kernel (gemv.cpp), one thread: y[t * ldy + r] (=, or += with accumulate) the dot of
// W's row r with x[t, W.cols], for rows r in [r0, r1) and t in [0, T).
void gemv_rows(const Weight& W, int64_t r0, int64_t r1, const float* x, int64_t T, float* y, int64_t ldy,
               bool accumulate);

}  // namespace m1::engine::cpu
