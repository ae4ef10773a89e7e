// rope's validation and layout, shared by the CPU (rope.cpp) and CUDA (rope.cu) kernels: x is
// [..., T, D] with D even; positions (int32, optional) broadcast against x's leading axes [..., T]
// and default to 0 .. T-1 along T.
#pragma once
#include <cstdint>
#include <vector>

#include "kx/registry.h"

namespace kx {

struct RopePlan {
  int64_t d = 0;        // D, the rotated axis
  int64_t rows = 0;     // rows of D in x
  int64_t entries = 0;  // position entries: positions.numel(), or T by default
  bool inverse = false;
  Shape lead;                    // x's leading axes [..., T]
  std::vector<int64_t> pstride;  // each leading axis's stride into the position entries (0 where broadcast)
  Shape positions_shape;         // the entries' shape: positions' own, or [T]
};

inline RopePlan rope_plan(const Tensor& x, const Tensor& positions, const Attrs& attrs) {
  KX_CHECK(x.dim() >= 2, Shape, "rope: x must be [..., T, D], got ", shape_str(x.shape));
  RopePlan p;
  p.d = x.size(-1);
  const int64_t t = x.size(-2);
  KX_CHECK(p.d % 2 == 0, Shape, "rope: the last axis (D = ", p.d, ") must be even");
  p.inverse = attrs.flag("inverse", false);
  p.lead = Shape(x.shape.begin(), x.shape.end() - 1);
  const int64_t rank = (int64_t)p.lead.size();
  p.rows = numel_of(p.lead);
  p.pstride.assign((size_t)rank, 0);
  if (positions.defined()) {
    KX_CHECK(positions.dim() <= rank, Shape, "rope: positions ", shape_str(positions.shape),
             " do not broadcast to x's leading axes ", shape_str(p.lead));
    int64_t stride = 1;
    for (int64_t k = positions.dim() - 1; k >= 0; --k) {
      const int64_t pd = positions.shape[k], xk = rank - positions.dim() + k, xd = p.lead[xk];
      KX_CHECK(pd == xd || pd == 1, Shape, "rope: positions ", shape_str(positions.shape),
               " do not broadcast to x's leading axes ", shape_str(p.lead));
      if (pd != 1) p.pstride[xk] = stride;
      stride *= pd;
    }
    p.entries = positions.numel();
    p.positions_shape = positions.shape;
  } else {
    KX_CHECK(t <= 2147483647, Arg, "rope: T = ", t, " exceeds int32 positions");
    p.entries = t;
    p.pstride[rank - 1] = 1;
    p.positions_shape = {t};
  }
  return p;
}

}  // namespace kx
