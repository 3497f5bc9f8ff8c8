// Device-side reads of weights in their stored dtype (fp32, fp16, bf16), converted to fp32, and
// the host switch that instantiates a kernel for each. Included by .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/ops.h"

namespace m1::cuda {

__device__ __forceinline__ float wf(float x) { return x; }
__device__ __forceinline__ float wf(__half x) { return __half2float(x); }
__device__ __forceinline__ float wf(__nv_bfloat16 x) { return __bfloat162float(x); }

}  // namespace m1::cuda

// Runs BODY with WT bound to the C++ type of the WDType value `wt`.
#define M1_WDTYPE_SWITCH(wt, BODY)                     \
  switch (wt) {                                        \
    case ::m1::cuda::WDType::F32: {                    \
      using WT = float;                                \
      BODY;                                            \
    } break;                                           \
    case ::m1::cuda::WDType::F16: {                    \
      using WT = __half;                               \
      BODY;                                            \
    } break;                                           \
    case ::m1::cuda::WDType::BF16: {                   \
      using WT = __nv_bfloat16;                        \
      BODY;                                            \
    } break;                                           \
  }
