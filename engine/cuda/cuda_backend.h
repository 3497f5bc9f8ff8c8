// The CUDA implementation of engine/backend.h on one GPU.
// defines: CudaOptions, OpProfile, CudaControl, cuda_control, make_cuda_backend
// Decisions: all ops run on one stream owned by the backend, asynchronously; copy_to_host and
// synchronize wait. Weights are copied to the device in their stored dtype (bf16/fp16/fp32);
// activations are fp32 as the interface says. Small host arrays an op receives (ids, positions,
// page tables) are uploaded into scratch on the same stream, so the calls stay stream-ordered.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "engine/backend.h"

namespace m1::engine {

struct CudaOptions {
  int device = 0;
  // Lightning prefill on tensor cores (bf16 operands, fp32 state) when head_dim == 128; false
  // keeps the fp32 recurrent kernel everywhere (bit-faithful parity runs on fp32 checkpoints).
  bool tensor_core_lightning = true;
  // Softmax-attention prefill (>= 16 new rows, head_dim 64/128) on tensor cores (bf16 Q/K/V);
  // false keeps the fp32 flash-decoding kernel for prefill rows too.
  bool tensor_core_attention = true;
  // One-token steps bracketed by Backend::begin_graph/end_graph become CUDA graphs.
  bool graphs = true;
};

// Per-op GPU time of eager steps (CudaControl::set_profiling), grouped by op and shape.
struct OpProfile {
  std::string op;       // e.g. "matmul 24576x6144 bf16", "moe", "attention_decode"
  int64_t calls = 0;
  double ms = 0;        // total GPU time (events around each launch group)
  double bytes = 0;     // fewest bytes the calls must move (weights once, activations, state, K/V)
  double flops = 0;
};

// Controls of the CUDA backend that the Backend interface does not have (benchmarks, tests).
class CudaControl {
 public:
  virtual ~CudaControl() = default;
  virtual size_t bytes_allocated() const = 0;       // device bytes this backend holds now
  virtual size_t peak_bytes_allocated() const = 0;  // since creation or reset_peak()
  virtual void reset_peak() = 0;
  virtual void set_graphs(bool on) = 0;
  virtual int64_t graph_captures() const = 0;
  virtual int64_t graph_replays() const = 0;
  // Events around every op while on (graphs are not used then); take_profile() waits for the
  // device and returns the sums since the last call.
  virtual void set_profiling(bool on) = 0;
  virtual std::vector<OpProfile> take_profile() = 0;
  virtual void set_tensor_core_attention(bool on) = 0;
};

// The CUDA controls of `b`, or nullptr when b is not the CUDA backend.
CudaControl* cuda_control(Backend& b);

// Error (never abort) when no CUDA device is usable. (No default argument: `make_cuda_backend({})`
// would pick backend.h's make_cuda_backend(int device_index) overload.)
Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaOptions& opt);

}  // namespace m1::engine
