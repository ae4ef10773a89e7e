// What cross_entropy and cross_entropy_backward accept, checked once for the CPU kernels
// (cross_entropy.cpp) and the CUDA kernels (cross_entropy.cu). Labels are checked here, not only in
// TS, because the kernels index rows with them; the CUDA side passes a host copy of the labels.
#pragma once
#include <cstdint>

#include "kx/error.h"
#include "kx/tensor.h"

namespace kx {

// Checks shapes and labels (`lab`: the labels' values in host memory); returns the number of rows
// that count.
inline int64_t check_ce(const char* op, const Tensor& logits, const Tensor& labels, const int32_t* lab,
                        int64_t ignore) {
  KX_CHECK(logits.dim() == 2, Shape, op, ": logits must be [N, C], got ", shape_str(logits.shape));
  KX_CHECK(labels.dim() == 1 && labels.shape[0] == logits.shape[0], Shape, op, ": labels ", shape_str(labels.shape),
           " do not match logits ", shape_str(logits.shape), " (expected [", logits.shape[0], "])");
  const int64_t N = logits.shape[0], C = logits.shape[1];
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (lab[i] == ignore) continue;
    KX_CHECK(lab[i] >= 0 && lab[i] < C, Arg, op, ": label ", lab[i], " of row ", i, " is outside [0, ", C,
             ") and is not ignoreIndex ", ignore);
    ++count;
  }
  return count;
}

inline void check_ce_dloss(const Tensor& dloss) {
  KX_CHECK(dloss.numel() == 1, Shape, "cross_entropy_backward: dloss must have one element, got ", shape_str(dloss.shape));
}

}  // namespace kx
