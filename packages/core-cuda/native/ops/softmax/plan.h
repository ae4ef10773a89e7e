// What softmax, log_softmax and softmax_backward accept, checked once for the CPU kernels
// (softmax.cpp) and the CUDA kernels (softmax.cu): the [outer, C, inner] view around the axis, or
// the KexueError both backends report.
#pragma once
#include <cstdint>

#include "kx/axis_view.h"
#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

struct SoftmaxLayout {
  int64_t outer = 1, C = 1, inner = 1;
};

inline SoftmaxLayout softmax_layout(const char* op, const Tensor& x, const Attrs& attrs) {
  const AxisView v = axis_view(op, x, attrs);
  return {v.outer, v.len, v.inner};
}

// softmax_backward(y, dy; axis): y and dy alike.
inline SoftmaxLayout softmax_backward_layout(const Tensor& y, const Tensor& dy, const Attrs& attrs) {
  KX_CHECK(y.shape == dy.shape, Shape, "softmax_backward: y ", shape_str(y.shape), " and dy ", shape_str(dy.shape),
           " differ");
  KX_CHECK(y.dtype == dy.dtype, DType, "softmax_backward: y is ", dtype_name(y.dtype), ", dy ", dtype_name(dy.dtype));
  return softmax_layout("softmax_backward", y, attrs);
}

}  // namespace kx
