// The reduce family's validation and layout, shared by the CPU (reduce.cpp) and CUDA (reduce.cu)
// kernels: the axes attribute as per-dim flags, the output shape, and the coalesced groups (size-1
// dims dropped, neighbouring dims that are both reduced or both kept merged) that both backends
// reduce one [outer, R, inner] step at a time.
#pragma once
#include <cstdint>
#include <vector>

#include "kx/registry.h"

namespace kx {

enum class RedOp { Sum, Max };

// Dims after coalescing: sizes and whether each is reduced.
struct Groups {
  std::vector<int64_t> size;
  std::vector<bool> reduced;
};

inline Groups coalesce(const Shape& shape, const std::vector<bool>& reduce) {
  Groups g;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!g.size.empty() && g.reduced.back() == reduce[d]) {
      g.size.back() *= shape[d];
    } else {
      g.size.push_back(shape[d]);
      g.reduced.push_back(reduce[d]);
    }
  }
  return g;
}

// The axes attribute checked (in range, no repeats) as a per-dim flag; empty means all axes.
inline std::vector<bool> reduced_dims(const char* op, const Tensor& x, const Attrs& attrs) {
  const std::vector<int64_t> axes = attrs.ints("axes");
  const int64_t rank = x.dim();
  std::vector<bool> flag(rank, axes.empty());
  for (int64_t a : axes) {
    KX_CHECK(a >= -rank && a < rank, Arg, op, ": axis ", a, " is out of range for rank ", rank);
    const int64_t d = a < 0 ? a + rank : a;
    KX_CHECK(!flag[d], Arg, op, ": axis ", a, " is repeated");
    flag[d] = true;
  }
  return flag;
}

inline Shape reduced_shape(const Shape& shape, const std::vector<bool>& flag, bool keep) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!flag[d]) out.push_back(shape[d]);
    else if (keep) out.push_back(1);
  }
  return out;
}

// max has no identity: reducing a non-empty output over an empty axis is an error.
inline void check_max_reducible(const char* name, const Shape& shape, const std::vector<bool>& flag,
                                const Shape& out_shape) {
  for (size_t d = 0; d < flag.size(); ++d)
    KX_CHECK(!flag[d] || shape[d] > 0 || numel_of(out_shape) == 0, Arg, name, ": cannot reduce over the empty axis ",
             d, " of ", shape_str(shape), " (max has no identity)");
}

// max_backward(x, y, dy): the reduced dims as flags, after checking y and dy against them.
inline std::vector<bool> max_backward_dims(const Tensor& x, const Tensor& y, const Tensor& dy, const Attrs& attrs) {
  const std::vector<bool> flag = reduced_dims("max_backward", x, attrs);
  const Shape out_shape = reduced_shape(x.shape, flag, false);
  KX_CHECK(y.dtype == x.dtype && dy.dtype == x.dtype, DType, "max_backward: x, y and dy must share a dtype, got ",
           dtype_name(x.dtype), ", ", dtype_name(y.dtype), ", ", dtype_name(dy.dtype));
  KX_CHECK(y.numel() == numel_of(out_shape) && dy.numel() == y.numel(), Shape, "max_backward: y ", shape_str(y.shape),
           " and dy ", shape_str(dy.shape), " do not match the reduction of ", shape_str(x.shape));
  return flag;
}

}  // namespace kx
