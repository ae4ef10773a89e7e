// The elementwise family's validation, shared by the CPU (elementwise.cpp) and CUDA (elementwise.cu)
// kernels so both accept and reject the same calls with the same errors: output shapes of the
// broadcasting ops, the unary function named by the attributes, unary_backward's operands, and
// bias_gelu's row layout.
#pragma once
#include <string>

#include "kx/broadcast.h"
#include "kx/fused_rows.h"
#include "kx/registry.h"
#include "ops/elementwise/math.h"

namespace kx {

// add/sub/mul/div: one dtype, shapes that broadcast; returns the output shape.
inline Shape binary_out_shape(const char* name, const Tensor& a, const Tensor& b) {
  KX_CHECK(a.dtype == b.dtype, DType, name, ": dtypes ", dtype_name(a.dtype), " and ", dtype_name(b.dtype),
           " differ (cast one first)");
  Shape shape;
  KX_CHECK(broadcast_shapes(a.shape, b.shape, &shape), Shape, name, ": shapes ", shape_str(a.shape), " and ",
           shape_str(b.shape), " do not broadcast");
  return shape;
}

inline Shape where_out_shape(const Tensor& c, const Tensor& a, const Tensor& b) {
  KX_CHECK(a.dtype == b.dtype, DType, "where: dtypes ", dtype_name(a.dtype), " and ", dtype_name(b.dtype), " differ");
  Shape ab, shape;
  KX_CHECK(broadcast_shapes(a.shape, b.shape, &ab) && broadcast_shapes(c.shape, ab, &shape), Shape,
           "where: shapes ", shape_str(c.shape), ", ", shape_str(a.shape), " and ", shape_str(b.shape),
           " do not broadcast");
  return shape;
}

inline Shape broadcast_to_shape(const Tensor& x, const Attrs& attrs) {
  const Shape shape = attrs.ints("shape");
  for (int64_t d : shape) KX_CHECK(d >= 0, Arg, "broadcast_to: negative dimension in ", shape_str(shape));
  KX_CHECK(broadcasts_to(x.shape, shape), Shape, "broadcast_to: ", shape_str(x.shape), " does not broadcast to ",
           shape_str(shape));
  return shape;
}

inline UnaryFn unary_fn(const char* op, const Attrs& attrs) {
  const std::string name = attrs.str("fn", "");
  const std::string approx = attrs.str("approximate", "none");
  KX_CHECK(approx == "none" || approx == "tanh", Arg, op, ": approximate must be 'none' or 'tanh', got '", approx, "'");
  UnaryFn fn;
  KX_CHECK(unary_fn_from_name(name.c_str(), approx == "tanh", &fn), Arg, op, ": unknown function '", name, "'");
  return fn;
}

inline void check_unary_backward(const Tensor& x, const Tensor& y, const Tensor& dy) {
  KX_CHECK(y.dtype == x.dtype && dy.dtype == x.dtype, DType, "unary_backward: x, y and dy must share a dtype, got ",
           dtype_name(x.dtype), ", ", dtype_name(y.dtype), ", ", dtype_name(dy.dtype));
  KX_CHECK(y.shape == x.shape && dy.shape == x.shape, Shape, "unary_backward: x ", shape_str(x.shape), ", y ",
           shape_str(y.shape), " and dy ", shape_str(dy.shape), " must have one shape");
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

}  // namespace kx
