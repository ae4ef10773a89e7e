// What topk and topk_backward accept, checked once for the CPU kernels (topk.cpp) and the CUDA
// kernels (topk.cu): the [outer, n, inner] view around the axis, or the KexueError both backends
// report.
#pragma once
#include <cstdint>
#include <limits>

#include "kx/axis_view.h"
#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

// Tensors viewed as [outer, n, inner] around the axis: n = in_len on the input side (x for topk,
// indices and dy for the backward) and out_len on the output side (k for topk, x's axis size for
// the backward).
struct TopkLayout {
  int64_t outer = 1, inner = 1;
  int64_t in_len = 1, out_len = 1;
  Shape out_shape;
};

// The [outer, in_len, inner] view of `t` around the axis attribute, with out_len still unset.
inline TopkLayout topk_view(const char* op, const Tensor& t, const Attrs& attrs, int64_t* axis_out) {
  const AxisView v = axis_view(op, t, attrs);
  TopkLayout l;
  l.outer = v.outer;
  l.in_len = v.len;
  l.inner = v.inner;
  l.out_shape = t.shape;
  *axis_out = v.axis;
  return l;
}

// topk(x; k, axis, largest): values and indices of x's shape with the axis k long.
inline TopkLayout topk_layout(const Tensor& x, const Attrs& attrs) {
  int64_t axis = 0;
  TopkLayout l = topk_view("topk", x, attrs, &axis);
  // Indices are int32, and a rank keeps an index in 31 bits (ops/topk/math.h).
  KX_CHECK(l.in_len <= std::numeric_limits<int32_t>::max(), Arg, "topk: axis size ", l.in_len,
           " exceeds the int32 indices");
  const int64_t k = attrs.int_("k", -1);
  KX_CHECK(k >= 0 && k <= l.in_len, Arg, "topk: k must be in [0, ", l.in_len, "] (the size of axis ", axis, "), got ", k);
  l.out_len = l.out_shape[axis] = k;
  return l;
}

// topk_backward(indices, dy; axis, length): indices and dy alike; dx has their shape with the axis
// `length` long (x's), zero except where indices point.
inline TopkLayout topk_backward_layout(const Tensor& indices, const Tensor& dy, const Attrs& attrs) {
  KX_CHECK(indices.shape == dy.shape, Shape, "topk_backward: indices ", shape_str(indices.shape), " and dy ",
           shape_str(dy.shape), " differ");
  int64_t axis = 0;
  TopkLayout l = topk_view("topk_backward", dy, attrs, &axis);
  const int64_t length = attrs.int_("length", -1);
  KX_CHECK(length >= 0 && length <= std::numeric_limits<int32_t>::max(), Arg,
           "topk_backward: attribute 'length' (the size of x's axis) must be in [0, 2^31), got ", length);
  l.out_len = l.out_shape[axis] = length;
  return l;
}

[[noreturn]] inline void fail_bad_topk_index(int32_t index, int64_t position, int64_t length) {
  fail(Code::Arg, "topk_backward: index ", index, " at position ", position, " is outside [0, ", length, ")");
}

}  // namespace kx
