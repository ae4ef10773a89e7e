// The [outer, len, inner] view of a tensor around one axis, as the families that work along any
// axis (softmax, topk) iterate it: the axis attribute (default -1, negatives counted from the end)
// checked once, for both backends, with one message.
#pragma once
#include <cstdint>

#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

struct AxisView {
  int64_t axis = 0;  // non-negative
  int64_t outer = 1, len = 1, inner = 1;
};

inline AxisView axis_view(const char* op, const Tensor& t, const Attrs& attrs) {
  const int64_t rank = t.dim();
  const int64_t axis = attrs.int_("axis", -1);
  KX_CHECK(rank > 0, Arg, op, ": needs at least one dimension, got a scalar");
  KX_CHECK(axis >= -rank && axis < rank, Arg, op, ": axis ", axis, " is out of range for rank ", rank);
  AxisView v;
  v.axis = axis < 0 ? axis + rank : axis;
  for (int64_t d = 0; d < v.axis; ++d) v.outer *= t.shape[d];
  v.len = t.shape[v.axis];
  for (int64_t d = v.axis + 1; d < rank; ++d) v.inner *= t.shape[d];
  return v;
}

}  // namespace kx
