// What the fused ops (bias+GELU, residual+LayerNorm, residual+RMSNorm) accept, checked once for the
// CPU kernels (fused.cpp) and the CUDA kernels (fused.cu): each check returns the row layout the
// kernels walk, or throws the KexueError both backends report.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "cpu/norm_params.h"
#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

// x seen as rows × d over its last axis; `lead` is the shape of the per-row statistics.
struct FusedRows {
  Shape lead;
  int64_t rows = 0;
  int64_t d = 0;
};

inline FusedRows fused_rows(const Tensor& x, const char* op, const char* name = "x") {
  KX_CHECK(x.dim() >= 1, Shape, op, ": ", name, " must have at least one axis, got ", shape_str(x.shape));
  FusedRows r;
  r.lead = Shape(x.shape.begin(), x.shape.end() - 1);
  r.rows = numel_of(r.lead);
  r.d = x.size(-1);
  return r;
}

// t (a second operand, e.g. dy or the residual) has the shape and dtype of `ref`.
inline void check_like(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name, const char* op) {
  KX_CHECK(t.shape == ref.shape, Shape, op, ": ", name, " ", shape_str(t.shape), " and ", ref_name, " ",
           shape_str(ref.shape), " differ");
  KX_CHECK(t.dtype == ref.dtype, DType, op, ": ", name, " is ", dtype_name(t.dtype), " but ", ref_name, " is ",
           dtype_name(ref.dtype));
}

// --- bias + GELU -------------------------------------------------------------------------------

struct BiasGeluPlan {
  FusedRows rows;
  bool tanh = false;  // GELU's tanh approximation
};

// bias_gelu(x, bias) and bias_gelu_backward(dy, x, bias): bias is a [D] row of x's dtype; dy (when
// given) has x's shape and dtype.
inline BiasGeluPlan bias_gelu_plan(const Tensor* dy, const Tensor& x, const Tensor& bias, const Attrs& attrs,
                                   const char* op) {
  BiasGeluPlan p;
  p.rows = fused_rows(x, op);
  KX_CHECK(bias.dim() == 1 && bias.shape[0] == p.rows.d, Shape, op, ": bias must have shape [", p.rows.d,
           "] (x's last axis), got ", shape_str(bias.shape));
  KX_CHECK(bias.dtype == x.dtype, DType, op, ": bias is ", dtype_name(bias.dtype), " but x is ", dtype_name(x.dtype));
  if (dy) check_like(*dy, "dy", x, "x", op);
  const std::string approx = attrs.str("approximate", "none");
  KX_CHECK(approx == "none" || approx == "tanh", Arg, op, ": approximate must be 'none' or 'tanh', got '", approx,
           "'");
  p.tanh = approx == "tanh";
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
  cpu::check_norm_param(gamma, x, p.rows.d, op, "gamma");
  cpu::check_norm_param(beta, x, p.rows.d, op, "beta");
  const double eps = attrs.num("eps", default_eps);
  KX_CHECK(std::isfinite(eps) && eps >= 0, Arg, op, ": eps must be a finite number >= 0, got ", eps);
  p.eps = (float)eps;
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
  cpu::check_norm_param(gamma, s, r.d, op, "gamma");
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
