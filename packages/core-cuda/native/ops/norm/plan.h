// What the norm family accepts (layer_norm, rms_norm, the residual norms add_layer_norm and
// add_rms_norm, and their backwards), checked once for the CPU kernels (norm.cpp) and the CUDA
// kernels (norm.cu): the rows × d view over the last axis, or the KexueError both backends report.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/error.h"
#include "kx/fused_rows.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

// An absent parameter (gamma, beta) passes; a present one must be [d] and of x's dtype.
inline void check_norm_param(const Tensor& p, const Tensor& x, int64_t d, const char* op, const char* name) {
  if (!p.defined()) return;
  KX_CHECK(p.dim() == 1 && p.shape[0] == d, Shape, op, ": ", name, " must have shape [", d, "], got ",
           shape_str(p.shape));
  KX_CHECK(p.dtype == x.dtype, DType, op, ": ", name, " is ", dtype_name(p.dtype), " but x is ",
           dtype_name(x.dtype));
}

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

inline NormPlan layer_norm_plan(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Attrs& attrs) {
  KX_CHECK(x.dim() >= 1, Shape, "layer_norm: x must have at least one axis, got ", shape_str(x.shape));
  NormPlan p = norm_rows(x);
  check_norm_param(gamma, x, p.d, "layer_norm", "gamma");
  check_norm_param(beta, x, p.d, "layer_norm", "beta");
  p.eps = norm_eps(attrs, 1e-5, "layer_norm");
  return p;
}

inline NormPlan layer_norm_backward_plan(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                         const Tensor& rstd) {
  KX_CHECK(x.dim() >= 1, Shape, "layer_norm_backward: x must have at least one axis");
  check_like(dy, "dy", x, "x", "layer_norm_backward");
  const NormPlan p = norm_rows(x);
  check_norm_param(gamma, x, p.d, "layer_norm_backward", "gamma");
  KX_CHECK(mean.dtype == DType::Float32 && rstd.dtype == DType::Float32, DType,
           "layer_norm_backward: mean and rstd must be float32");
  KX_CHECK(mean.numel() == p.rows && rstd.numel() == p.rows, Shape, "layer_norm_backward: mean/rstd need ", p.rows,
           " elements, got ", mean.numel(), " and ", rstd.numel());
  return p;
}

// --- RMSNorm ----------------------------------------------------------------------------------

inline NormPlan rms_norm_plan(const Tensor& x, const Tensor& gamma, const Attrs& attrs) {
  KX_CHECK(x.dim() >= 1, Shape, "rms_norm: x must have at least one axis, got ", shape_str(x.shape));
  NormPlan p = norm_rows(x);
  check_norm_param(gamma, x, p.d, "rms_norm", "gamma");
  p.eps = norm_eps(attrs, 1e-6, "rms_norm");
  return p;
}

inline NormPlan rms_norm_backward_plan(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& rstd) {
  KX_CHECK(x.dim() >= 1, Shape, "rms_norm_backward: x must have at least one axis");
  check_like(dy, "dy", x, "x", "rms_norm_backward");
  const NormPlan p = norm_rows(x);
  check_norm_param(gamma, x, p.d, "rms_norm_backward", "gamma");
  KX_CHECK(rstd.dtype == DType::Float32, DType, "rms_norm_backward: rstd must be float32");
  KX_CHECK(rstd.numel() == p.rows, Shape, "rms_norm_backward: rstd has ", rstd.numel(), " elements, x has ", p.rows,
           " rows");
  return p;
}

// --- residual + LayerNorm / RMSNorm ------------------------------------------------------------

struct AddNormPlan {
  FusedRows rows;
  float eps = 0.0f;
};

// add_layer_norm(x, residual, gamma, beta) / add_rms_norm(x, residual, gamma) (beta undefined):
// residual has x's shape and dtype; gamma/beta as layer_norm's; eps finite and >= 0.
inline AddNormPlan add_norm_plan(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                                 const Attrs& attrs, double default_eps, const char* op) {
  AddNormPlan p;
  p.rows = fused_rows(x, op);
  check_like(residual, "residual", x, "x", op);
  check_norm_param(gamma, x, p.rows.d, op, "gamma");
  check_norm_param(beta, x, p.rows.d, op, "beta");
  p.eps = (float)norm_eps(attrs, default_eps, op);
  return p;
}

// add_layer_norm_backward(dy, ds, s, gamma, mean, rstd) / add_rms_norm_backward(dy, ds, s, gamma,
// rstd) (mean undefined): dy and ds (optional: the gradient reaching s from its later uses) have s's
// shape and dtype; the statistics are float32 with one value per row.
inline FusedRows add_norm_backward_plan(const Tensor& dy, const Tensor& ds, const Tensor& s, const Tensor& gamma,
                                        const Tensor& mean, const Tensor& rstd, const char* op) {
  const FusedRows r = fused_rows(s, op, "s");
  check_like(dy, "dy", s, "s", op);
  if (ds.defined()) check_like(ds, "ds", s, "s", op);
  check_norm_param(gamma, s, r.d, op, "gamma");
  for (const Tensor* stat : {&mean, &rstd}) {
    if (!stat->defined()) continue;
    const char* name = stat == &mean ? "mean" : "rstd";
    KX_CHECK(stat->dtype == DType::Float32, DType, op, ": ", name, " must be float32, got ", dtype_name(stat->dtype));
    KX_CHECK(stat->numel() == r.rows, Shape, op, ": ", name, " needs ", r.rows, " elements (one per row), got ",
             stat->numel());
  }
  return r;
}

}  // namespace kx
