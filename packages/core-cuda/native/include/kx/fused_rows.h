// The row view of the fused tier's validations, shared by two families (bias_gelu in
// ops/elementwise/plan.h; add_layer_norm and add_rms_norm in ops/norm/plan.h): a tensor as rows × d
// over its last axis, and the check that a second operand matches the first.
#pragma once
#include <cstdint>

#include "kx/error.h"
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

}  // namespace kx
