// Shared by every CUDA file of the backend: the one macro that checks CUDA/cuBLAS results, and
// small helpers. Host-includable (plain C++ sees no device code): tests and benchmarks use it too.
// Errors inside the backend are bugs or a broken device: they abort with file:line and a hint.
#pragma once
#include <cstdio>
#include <cstdlib>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace m1::cuda {

using bf16 = __nv_bfloat16;

[[noreturn]] inline void fail_cuda(cudaError_t e, const char* what, const char* file, int line) {
  std::fprintf(stderr, "CUDA error %s (%s) at %s:%d: %s\n", cudaGetErrorName(e),
               cudaGetErrorString(e), file, line, what);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver)
    std::fprintf(stderr, "HINT: no usable GPU/driver on this machine; use --device cpu\n");
  std::abort();
}

// True when a CUDA device is present and usable (tests skip otherwise).
inline bool device_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

}  // namespace m1::cuda

#define M1_CUDA_CHECK(call)                                                  \
  do {                                                                       \
    cudaError_t m1_e_ = (call);                                              \
    if (m1_e_ != cudaSuccess) ::m1::cuda::fail_cuda(m1_e_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports bad launch configurations at once (not asynchronously later).
#define M1_CUDA_CHECK_LAUNCH() M1_CUDA_CHECK(cudaGetLastError())
