// The optional per-feature parameters of LayerNorm and RMSNorm (gamma, beta): their check and
// their float32 copy, shared by both ops' forward and backward.
#pragma once
#include <cstdint>
#include <vector>

#include "kx/convert.h"
#include "kx/error.h"
#include "kx/tensor.h"

namespace kx::cpu {

// An absent parameter passes; a present one must be [d] and of x's dtype.
inline void check_norm_param(const Tensor& p, const Tensor& x, int64_t d, const char* op, const char* name) {
  if (!p.defined()) return;
  KX_CHECK(p.dim() == 1 && p.shape[0] == d, Shape, op, ": ", name, " must have shape [", d, "], got ",
           shape_str(p.shape));
  KX_CHECK(p.dtype == x.dtype, DType, op, ": ", name, " is ", dtype_name(p.dtype), " but x is ",
           dtype_name(x.dtype));
}

// The parameter (shape [d], any floating dtype) as a float32 row; `fill` everywhere when absent.
inline std::vector<float> norm_param_row(const Tensor& p, int64_t d, float fill) {
  std::vector<float> out((size_t)d, fill);
  if (p.defined()) KX_DISPATCH_FLOAT(p.dtype, widen(p.data<scalar_t>(), out.data(), d));
  return out;
}

}  // namespace kx::cpu
