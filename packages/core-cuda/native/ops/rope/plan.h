// rope's validation and layout, shared by the CPU (rope.cpp) and CUDA (rope.cu) kernels: x is
// [..., T, D]; the first rotaryDim (r, even, default D) channels are rotated, the rest pass through.
// positions (int32, optional) broadcast against x's leading axes [..., T] and default to 0 .. T-1
// along T; `offset` is added to every position; `positionScale` divides it (linear interpolation).
// frequencies (float32 [r/2], optional) replace θ_i = base^(−2i/r).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "kx/registry.h"
#include "ops/rope/math.h"

namespace kx {

struct RopePlan {
  int64_t d = 0;        // D, the last axis
  int64_t rotary = 0;   // r ≤ D, the rotated channels
  int64_t rows = 0;     // rows of D in x
  int64_t entries = 0;  // position entries: positions.numel(), or T by default
  bool inverse = false;
  bool rotate_half = false;
  double base = kRopeBase;
  int64_t offset = 0;
  float scale = 1.0f;            // positions are divided by it
  Shape lead;                    // x's leading axes [..., T]
  std::vector<int64_t> pstride;  // each leading axis's stride into the position entries (0 where broadcast)
  Shape positions_shape;         // the entries' shape: positions' own, or [T]
};

inline RopePlan rope_plan(const Tensor& x, const Tensor& positions, const Tensor& frequencies, const Attrs& attrs) {
  KX_CHECK(x.dim() >= 2, Shape, "rope: x must be [..., T, D], got ", shape_str(x.shape));
  RopePlan p;
  p.d = x.size(-1);
  const int64_t t = x.size(-2);
  p.rotary = attrs.int_("rotaryDim", p.d);
  if (!attrs.has("rotaryDim")) KX_CHECK(p.d % 2 == 0, Shape, "rope: the last axis (D = ", p.d, ") must be even");
  // (without a rotaryDim every channel turns, none at all for an empty last axis)
  else KX_CHECK(p.rotary >= 2 && p.rotary <= p.d && p.rotary % 2 == 0, Arg, "rope: rotaryDim must be even, in [2, D = ", p.d,
                "], got ", p.rotary);
  p.inverse = attrs.flag("inverse", false);
  p.rotate_half = attrs.flag("rotateHalf", false);
  p.base = attrs.num("base", kRopeBase);
  KX_CHECK(std::isfinite(p.base) && p.base > 0, Arg, "rope: base must be a positive finite number, got ", p.base);
  p.offset = attrs.int_("offset", 0);
  KX_CHECK(p.offset >= -2147483647 && p.offset <= 2147483647, Arg, "rope: offset ", p.offset, " exceeds int32 positions");
  const double scale = attrs.num("positionScale", 1.0);
  p.scale = (float)scale;
  KX_CHECK(std::isfinite(p.scale) && p.scale > 0, Arg, "rope: positionScale must be a positive finite float32, got ", scale);
  if (frequencies.defined()) {
    KX_CHECK(frequencies.dtype == DType::Float32, DType, "rope: frequencies must be float32");
    KX_CHECK(frequencies.dim() == 1 && frequencies.size(0) == p.rotary / 2, Shape, "rope: frequencies must be [r/2 = ",
             p.rotary / 2, "], got ", shape_str(frequencies.shape));
  }
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
