// The CUDA implementation of engine/backend.h on one GPU. defines: CudaOptions, make_cuda_backend
// Decisions: all ops run on one stream owned by the backend, asynchronously; copy_to_host and
// synchronize wait. Weights are copied to the device in their stored dtype (bf16/fp16/fp32);
// activations are fp32 as the interface says. Small host arrays an op receives (ids, positions,
// page tables) are uploaded into scratch on the same stream, so the calls stay stream-ordered.
#pragma once
#include <memory>

#include "common/result.h"
#include "engine/backend.h"

namespace m1::engine {

struct CudaOptions {
  int device = 0;
  // Lightning prefill on tensor cores (bf16 operands, fp32 state) when head_dim == 128; false
  // keeps the fp32 recurrent kernel everywhere (bit-faithful parity runs on fp32 checkpoints).
  bool tensor_core_lightning = true;
};

// Error (never abort) when no CUDA device is usable. (No default argument: `make_cuda_backend({})`
// would pick backend.h's make_cuda_backend(int device_index) overload.)
Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaOptions& opt);

}  // namespace m1::engine
