// Backend helpers shared by every backend (engine/cpu, engine/cuda).
#include "engine/backend.h"

#include "engine/checkpoint.h"

#include <string>

namespace m1::engine {

Result<Weight> describe_weight(const TensorView& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
    return make_error("tensor '" + t.name + "' in " + t.file + " has dtype " + std::string(dtype_name(t.dtype)) +
                      ", expected F32, BF16 or F16");
  Weight w;
  w.dtype = t.dtype;
  if (t.shape.size() == 1) {
    w.rows = 1;
    w.cols = t.shape[0];
  } else if (t.shape.size() == 2) {
    w.rows = t.shape[0];
    w.cols = t.shape[1];
  } else {
    return make_error("tensor '" + t.name + "' in " + t.file + " has " + std::to_string(t.shape.size()) +
                      " dimensions, expected a vector or a matrix");
  }
  return w;
}

}  // namespace m1::engine
