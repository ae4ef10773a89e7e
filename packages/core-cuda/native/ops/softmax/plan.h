// What softmax, log_softmax and softmax_backward accept, checked once for the CPU kernels
// (softmax.cpp) and the CUDA kernels (softmax.cu): the [outer, C, inner] view around the axis, or
// the KexueError both backends report.
#pragma once
#include <cstdint>

#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

struct SoftmaxLayout {
  int64_t outer = 1, C = 1, inner = 1;
};

inline SoftmaxLayout softmax_layout(const char* op, const Tensor& x, const Attrs& attrs) {
  const int64_t rank = x.dim();
  const int64_t axis = attrs.int_("axis", -1);
  KX_CHECK(rank > 0, Arg, op, ": needs at least one dimension, got a scalar");
  KX_CHECK(axis >= -rank && axis < rank, Arg, op, ": axis ", axis, " is out of range for rank ", rank);
  const int64_t a = axis < 0 ? axis + rank : axis;
  SoftmaxLayout l;
  for (int64_t d = 0; d < a; ++d) l.outer *= x.shape[d];
  l.C = x.shape[a];
  for (int64_t d = a + 1; d < rank; ++d) l.inner *= x.shape[d];
  return l;
}

// softmax_backward(y, dy; axis): y and dy alike.
inline SoftmaxLayout softmax_backward_layout(const Tensor& y, const Tensor& dy, const Attrs& attrs) {
  KX_CHECK(y.shape == dy.shape, Shape, "softmax_backward: y ", shape_str(y.shape), " and dy ", shape_str(dy.shape),
           " differ");
  KX_CHECK(y.dtype == dy.dtype, DType, "softmax_backward: y is ", dtype_name(y.dtype), ", dy ", dtype_name(dy.dtype));
  return softmax_layout("softmax_backward", y, attrs);
}

}  // namespace kx
