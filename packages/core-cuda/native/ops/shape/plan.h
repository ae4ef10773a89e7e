// The shape family's validation and layout, shared by the CPU (shape.cpp) and CUDA (shape.cu)
// kernels: reshape's target shape, permute's checked permutation and its simplified form, the box
// of slice and slice_backward, concat's output and the chunk each input contributes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kx/registry.h"

namespace kx {

// Calls fn(T{}) with T an unsigned integer type as wide as one element of dtype.
template <class Fn>
inline void with_element_type(DType dtype, Fn&& fn) {
  switch (dtype_size(dtype)) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fail(Code::Internal, "unexpected element size ", dtype_size(dtype));
  }
}

inline Shape row_major_strides(const Shape& dims) {
  Shape s(dims.size(), 1);
  for (int64_t i = (int64_t)dims.size() - 2; i >= 0; --i) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

// reshape: one dimension may be -1 and is inferred.
inline Shape reshape_shape(const Tensor& x, const Attrs& attrs) {
  Shape shape = attrs.ints("shape");
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      KX_CHECK(infer < 0, Shape, "reshape: more than one -1 in ", shape_str(shape));
      infer = (int64_t)i;
    } else {
      KX_CHECK(shape[i] >= 0, Arg, "reshape: negative dimension in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    KX_CHECK(known > 0 && x.numel() % known == 0, Shape, "reshape: cannot infer -1 for ", shape_str(x.shape), " -> ",
             shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  KX_CHECK(numel_of(shape) == x.numel(), Shape, "reshape: ", shape_str(x.shape), " (", x.numel(),
           " elements) cannot become ", shape_str(shape));
  return shape;
}

// permute's output shape, after checking that perm is a permutation of x's axes.
inline Shape permute_out_shape(const Tensor& x, const std::vector<int64_t>& perm) {
  const int64_t r = x.dim();
  KX_CHECK((int64_t)perm.size() == r, Arg, "permute: perm has ", perm.size(), " axes, x has rank ", r);
  std::vector<bool> seen(r, false);
  Shape out_shape(r);
  for (int64_t o = 0; o < r; ++o) {
    KX_CHECK(perm[o] >= 0 && perm[o] < r && !seen[perm[o]], Arg, "permute: ", shape_str(perm),
             " is not a permutation of the axes of a rank-", r, " tensor");
    seen[perm[o]] = true;
    out_shape[o] = x.shape[perm[o]];
  }
  return out_shape;
}

// A permutation reduced to its essentials: input dims and, for each output axis, its input axis.
struct SimplePerm {
  Shape dims;                 // input dims after simplification
  std::vector<int64_t> perm;  // output axis -> input axis
};

inline SimplePerm simplify(const Shape& shape, const std::vector<int64_t>& perm) {
  // Drop size-1 axes, renumbering the others in input order.
  std::vector<int64_t> renum(shape.size(), -1);
  Shape dims;
  for (size_t a = 0; a < shape.size(); ++a) {
    if (shape[a] != 1) {
      renum[a] = (int64_t)dims.size();
      dims.push_back(shape[a]);
    }
  }
  std::vector<int64_t> order;
  for (int64_t p : perm) if (renum[p] >= 0) order.push_back(renum[p]);
  // Merge runs of output axes whose input axes are consecutive: they move as one axis.
  std::vector<std::vector<int64_t>> groups;
  for (int64_t a : order) {
    if (!groups.empty() && groups.back().back() + 1 == a) groups.back().push_back(a);
    else groups.push_back({a});
  }
  // Number the groups by their position in the input.
  std::vector<size_t> by_input(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) by_input[g] = g;
  std::sort(by_input.begin(), by_input.end(), [&](size_t x, size_t y) { return groups[x][0] < groups[y][0]; });
  SimplePerm s;
  s.dims.resize(groups.size());
  s.perm.resize(groups.size());
  for (size_t rank = 0; rank < by_input.size(); ++rank) {
    int64_t d = 1;
    for (int64_t a : groups[by_input[rank]]) d *= dims[a];
    s.dims[rank] = d;
    s.perm[by_input[rank]] = (int64_t)rank;
  }
  return s;
}

// begin[a] in [0, dim]; size[a] = -1 means "to the end".
inline Shape resolve_box(const char* op, const Shape& full, const Shape& begin, Shape size) {
  KX_CHECK(begin.size() == full.size() && size.size() == full.size(), Arg, op, ": begin ", shape_str(begin),
           " and size ", shape_str(size), " must have one entry per axis of ", shape_str(full));
  for (size_t a = 0; a < full.size(); ++a) {
    KX_CHECK(begin[a] >= 0 && begin[a] <= full[a], Arg, op, ": begin ", shape_str(begin), " is out of range for ",
             shape_str(full));
    if (size[a] == -1) size[a] = full[a] - begin[a];
    KX_CHECK(size[a] >= 0 && begin[a] + size[a] <= full[a], Arg, op, ": a box of size ", shape_str(size), " at ",
             shape_str(begin), " does not fit in ", shape_str(full));
  }
  return size;
}

// slice_backward's output shape (the attribute), checked against dy, which must fit at begin.
inline Shape slice_backward_shape(const Tensor& dy, const Attrs& attrs) {
  const Shape shape = attrs.ints("shape");
  KX_CHECK(shape.size() == dy.shape.size(), Shape, "slice_backward: dy ", shape_str(dy.shape),
           " and shape ", shape_str(shape), " differ in rank");
  for (int64_t d : shape) KX_CHECK(d >= 0, Arg, "slice_backward: negative dimension in ", shape_str(shape));
  resolve_box("slice_backward", shape, attrs.ints("begin"), dy.shape);
  return shape;
}

// concat along `axis`: each input contributes chunk[i] contiguous elements per outer index, placed
// at[i] elements into each output row of out_row elements.
struct ConcatPlan {
  Shape out_shape;
  int64_t outer = 1, out_row = 0;
  std::vector<int64_t> chunk, at;
};

inline ConcatPlan concat_plan(const Inputs& in, const Attrs& attrs) {
  const Tensor& first = in[0];
  const int64_t r = first.dim();
  KX_CHECK(r > 0, Shape, "concat: cannot join rank-0 tensors");
  const int64_t axis = attrs.int_("axis", 0);
  KX_CHECK(axis >= 0 && axis < r, Arg, "concat: axis ", axis, " is out of range for rank ", r);
  ConcatPlan p;
  p.out_shape = first.shape;
  p.out_shape[axis] = 0;
  for (const Tensor& t : in) {
    KX_CHECK(t.dtype == first.dtype, DType, "concat: dtypes ", dtype_name(first.dtype), " and ", dtype_name(t.dtype),
             " differ");
    KX_CHECK(t.dim() == r, Shape, "concat: ranks of ", shape_str(first.shape), " and ", shape_str(t.shape), " differ");
    for (int64_t a = 0; a < r; ++a) {
      KX_CHECK(a == axis || t.shape[a] == first.shape[a], Shape, "concat: ", shape_str(first.shape), " and ",
               shape_str(t.shape), " differ outside axis ", axis);
    }
    p.out_shape[axis] += t.shape[axis];
  }
  int64_t inner = 1;
  for (int64_t a = 0; a < axis; ++a) p.outer *= p.out_shape[a];
  for (int64_t a = axis + 1; a < r; ++a) inner *= p.out_shape[a];
  p.out_row = p.out_shape[axis] * inner;
  const size_t n_in = in.size();
  p.chunk.resize(n_in);
  p.at.resize(n_in);
  for (size_t i = 0, off = 0; i < n_in; ++i) {
    p.chunk[i] = in[i].shape[axis] * inner;
    p.at[i] = (int64_t)off;
    off += (size_t)p.chunk[i];
  }
  return p;
}

}  // namespace kx
