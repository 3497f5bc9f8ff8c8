// CudaBackend::sample: the sampler's rules on the device (engine/cuda/sampling.h); only the 4-byte
// id comes back. The mask (Engine::token_mask) is uploaded once and kept while it is unchanged.
#include <algorithm>
#include <cstdio>

#include "engine/cuda/cuda_backend_impl.h"
#include "engine/cuda/sampling.h"

namespace m1::engine::cuda_impl {

Result<int32_t> CudaBackend::sample(const float* logits, int64_t n, const DeviceSampling& p) {
  if (mode_ != Mode::Eager) {
    std::fprintf(stderr, "cuda backend: sample inside a step graph (the graph contract forbids it)\n");
    std::abort();
  }
  if (n <= 0 || n > (int64_t(1) << 31) - 1) return make_error("sample: vocabulary of " + std::to_string(n) + " ids");
  if (!(p.temperature >= 0)) return make_error("sample: temperature must be >= 0");
  cuda::SampleParams sp;
  sp.V = int(std::min<int64_t>(n, std::max<int64_t>(1, p.vocab)));
  if (p.mask && p.mask_len > 0) {
    const size_t len = size_t(p.mask_len);
    if (mask_host_.size() != len || std::memcmp(mask_host_.data(), p.mask, len) != 0) {
      if (mask_host_.size() < len) {
        cudaFree(mask_dev_);
        M1_CUDA_CHECK(cudaMalloc(&mask_dev_, len));
      }
      mask_host_.assign(p.mask, p.mask + len);
      M1_CUDA_CHECK(cudaMemcpyAsync(mask_dev_, mask_host_.data(), len, cudaMemcpyHostToDevice, stream_));
    }
    sp.mask = mask_dev_;
    sp.mask_len = int(std::min<int64_t>(p.mask_len, sp.V));
  }
  sp.temperature = p.temperature;
  sp.top_k = int(std::min<int64_t>(std::max<int64_t>(0, p.top_k), sp.V));
  sp.top_p = p.top_p;
  sp.min_p = p.min_p;
  sp.u = p.u;
  void* ws = sample_ws_.get(cuda::sample_workspace_bytes(sp.V));
  {
    Prof pr(this, p.temperature == 0 ? "sample greedy" : "sample", 4.0 * double(sp.V), 0);
    if (p.temperature == 0)
      cuda::sample_argmax(logits, sp, id_dev_, ws, stream_);
    else
      cuda::sample_distribution(logits, sp, id_dev_, ws, stream_);
  }
  M1_CUDA_CHECK(cudaMemcpyAsync(id_host_, id_dev_, 4, cudaMemcpyDeviceToHost, stream_));
  M1_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return *id_host_;
}

}  // namespace m1::engine::cuda_impl
