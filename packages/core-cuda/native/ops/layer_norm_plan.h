// What layer_norm and layer_norm_backward accept, checked once for the CPU kernels (layer_norm.cpp)
// and the CUDA kernels (layer_norm.cu): the rows × d view over the last axis, or the KexueError both
// backends report. NormPlan is also RMSNorm's (rms_norm_plan.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu/norm_params.h"
#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

// x as rows × d; `lead` is the shape of the per-row statistics.
struct NormPlan {
  Shape lead;
  int64_t rows = 0;
  int64_t d = 0;
  double eps = 0.0;
};

inline NormPlan norm_rows(const Tensor& x) {
  NormPlan p;
  p.lead = Shape(x.shape.begin(), x.shape.end() - 1);
  p.rows = numel_of(p.lead);
  p.d = x.size(-1);
  return p;
}

inline double norm_eps(const Attrs& attrs, double fallback, const char* op) {
  const double eps = attrs.num("eps", fallback);
  KX_CHECK(std::isfinite(eps) && eps >= 0, Arg, op, ": eps must be a finite number >= 0, got ", eps);
  return eps;
}

// The backward's dy has x's shape and dtype.
inline void check_norm_dy(const Tensor& dy, const Tensor& x, const char* op) {
  KX_CHECK(dy.shape == x.shape, Shape, op, ": dy ", shape_str(dy.shape), " and x ", shape_str(x.shape), " differ");
  KX_CHECK(dy.dtype == x.dtype, DType, op, ": dy is ", dtype_name(dy.dtype), " but x is ", dtype_name(x.dtype));
}

inline NormPlan layer_norm_plan(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Attrs& attrs) {
  KX_CHECK(x.dim() >= 1, Shape, "layer_norm: x must have at least one axis, got ", shape_str(x.shape));
  NormPlan p = norm_rows(x);
  cpu::check_norm_param(gamma, x, p.d, "layer_norm", "gamma");
  cpu::check_norm_param(beta, x, p.d, "layer_norm", "beta");
  p.eps = norm_eps(attrs, 1e-5, "layer_norm");
  return p;
}

inline NormPlan layer_norm_backward_plan(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                         const Tensor& rstd) {
  KX_CHECK(x.dim() >= 1, Shape, "layer_norm_backward: x must have at least one axis");
  check_norm_dy(dy, x, "layer_norm_backward");
  const NormPlan p = norm_rows(x);
  cpu::check_norm_param(gamma, x, p.d, "layer_norm_backward", "gamma");
  KX_CHECK(mean.dtype == DType::Float32 && rstd.dtype == DType::Float32, DType,
           "layer_norm_backward: mean and rstd must be float32");
  KX_CHECK(mean.numel() == p.rows && rstd.numel() == p.rows, Shape, "layer_norm_backward: mean/rstd need ", p.rows,
           " elements, got ", mean.numel(), " and ", rstd.numel());
  return p;
}

}  // namespace kx
