// What rms_norm and rms_norm_backward accept, checked once for the CPU kernels (rms_norm.cpp) and
// the CUDA kernels (rms_norm.cu); the row view and shared checks are layer_norm_plan.h's.
#pragma once
#include "ops/layer_norm_plan.h"

namespace kx {

inline NormPlan rms_norm_plan(const Tensor& x, const Tensor& gamma, const Attrs& attrs) {
  KX_CHECK(x.dim() >= 1, Shape, "rms_norm: x must have at least one axis, got ", shape_str(x.shape));
  NormPlan p = norm_rows(x);
  cpu::check_norm_param(gamma, x, p.d, "rms_norm", "gamma");
  p.eps = norm_eps(attrs, 1e-6, "rms_norm");
  return p;
}

inline NormPlan rms_norm_backward_plan(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd) {
  KX_CHECK(x.dim() >= 1, Shape, "rms_norm_backward: x must have at least one axis");
  check_norm_dy(dy, x, "rms_norm_backward");
  const NormPlan p = norm_rows(x);
  cpu::check_norm_param(gamma, x, p.d, "rms_norm_backward", "gamma");
  KX_CHECK(rstd.dtype == DType::Float32, DType, "rms_norm_backward: rstd must be float32");
  KX_CHECK(rstd.numel() == p.rows, Shape, "rms_norm_backward: rstd has ", rstd.numel(), " elements, x has ", p.rows,
           " rows");
  return p;
}

}  // namespace kx
