// What the fused optimizer updates accept, checked once for the CPU kernels (optim.cpp) and the CUDA
// kernels (optim.cu): the state tensors' shapes and dtypes, and each update's attributes read into
// a config (or the KexueError both backends report, in the same order).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"
#include "ops/optim/math.h"

namespace kx {

// A gradient or state tensor has the parameter's shape; state (float32) is float32.
inline void check_state_like(const Tensor& t, const Tensor& param, const char* op, const char* role, bool float32) {
  KX_CHECK(t.shape == param.shape, Shape, op, ": ", role, " has shape ", shape_str(t.shape), ", the parameter ",
           shape_str(param.shape));
  if (float32) KX_CHECK(t.dtype == DType::Float32, DType, op, ": ", role, " must be float32, got ", dtype_name(t.dtype));
}

// A group op's inputs: one tuple of `arity` tensors per parameter, every tuple checked by
// check_one(op, in, at) before the kernel moves anything.
template <class CheckOne>
void check_group(const char* op, const Inputs& in, size_t arity, const char* tuple, CheckOne check_one) {
  KX_CHECK(!in.empty() && in.size() % arity == 0, Arg, op, ": inputs come as ", tuple, " tuples, got ", in.size(),
           " tensors");
  for (size_t i = 0; i < in.size(); i += arity) check_one(op, in, i);
}

inline double finite_attr(const Attrs& attrs, const char* op, const char* name, double fallback) {
  const double v = attrs.num(name, fallback);
  KX_CHECK(std::isfinite(v), Arg, op, ": ", name, " must be finite, got ", v);
  return v;
}

inline double lr_attr(const Attrs& attrs, const char* op) {
  const double lr = finite_attr(attrs, op, "lr", 0.0);
  KX_CHECK(lr >= 0, Arg, op, ": lr must be >= 0, got ", lr);
  return lr;
}

inline double unit_attr(const Attrs& attrs, const char* op, const char* name, double fallback) {
  const double v = finite_attr(attrs, op, name, fallback);
  KX_CHECK(v >= 0 && v <= 1, Arg, op, ": ", name, " must be in [0, 1], got ", v);
  return v;
}

// optim_clip_factor's attributes: the maximum norm (> 0) and the gradients' scale.
struct ClipAttrs {
  double max_norm, scale;
};

inline ClipAttrs clip_attrs(const Attrs& attrs) {
  const char* op = "optim_clip_factor";
  const double max_norm = finite_attr(attrs, op, "maxNorm", 0.0);
  KX_CHECK(max_norm > 0, Arg, op, ": maxNorm must be > 0, got ", max_norm);
  return {max_norm, finite_attr(attrs, op, "scale", 1.0)};
}

// optim_clip_factor's input: one element (the global norm).
inline void check_clip_norm(const Tensor& norm) {
  KX_CHECK(norm.numel() == 1, Shape, "optim_clip_factor: norm must have one element, got ", norm.numel());
}

// One Tiger update's (param, grad, m), at in[at..at+2].
inline void check_tiger_triple(const char* op, const Inputs& in, size_t at) {
  check_state_like(in[at + 1], in[at], op, "grad", false);
  check_state_like(in[at + 2], in[at], op, "m", true);
}

inline void check_tiger_group(const Inputs& in) {
  check_group("optim_tiger_group", in, 3, "(param, grad, m)", check_tiger_triple);
}

struct TigerConfig {
  double lr, beta;
  int64_t accum_steps;
  bool first, update;
  std::string mode;  // rms: none | tensor | row
  double wd, shrink, centre, gscale;
};

inline TigerConfig tiger_config(const Attrs& attrs) {
  const char* op = "optim_tiger";
  TigerConfig c;
  c.lr = lr_attr(attrs, op);
  c.beta = unit_attr(attrs, op, "beta", 0.965);
  c.accum_steps = attrs.int_("accumSteps", 1);
  KX_CHECK(c.accum_steps >= 1, Arg, op, ": accumSteps must be >= 1, got ", c.accum_steps);
  c.first = attrs.flag("first", true);
  c.update = attrs.flag("update", true);
  c.mode = attrs.str("rms", "tensor");
  KX_CHECK(c.mode == "none" || c.mode == "tensor" || c.mode == "row", Arg, op,
           ": rms must be none, tensor or row, got '", c.mode, "'");
  c.wd = finite_attr(attrs, op, "weightDecay", 0.0);
  c.shrink = finite_attr(attrs, op, "shrink", 0.99);
  c.centre = finite_attr(attrs, op, "centre", 0.0);
  c.gscale = finite_attr(attrs, op, "gradScale", 1.0);
  return c;
}

struct LionConfig {
  double lr, beta1, beta2, wd, gscale;
};

inline LionConfig lion_config(const Attrs& attrs) {
  const char* op = "optim_lion";
  LionConfig c;
  c.lr = lr_attr(attrs, op);
  c.beta1 = unit_attr(attrs, op, "beta1", 0.95);
  c.beta2 = unit_attr(attrs, op, "beta2", 0.98);
  c.wd = finite_attr(attrs, op, "weightDecay", 0.0);
  c.gscale = finite_attr(attrs, op, "gradScale", 1.0);
  return c;
}

// One AdamW update's (param, grad, m, v), at in[at..at+3].
inline void check_adamw_quad(const char* op, const Inputs& in, size_t at) {
  const Tensor& param = in[at];
  check_state_like(in[at + 1], param, op, "grad", false);
  check_state_like(in[at + 2], param, op, "m", true);
  check_state_like(in[at + 3], param, op, "v", true);
}

inline void check_adamw_group(const Inputs& in) {
  check_group("optim_adamw_group", in, 4, "(param, grad, m, v)", check_adamw_quad);
}

struct AdamWConfig {
  AdamWCoef<double> coef;
  double gscale;
};

inline AdamWConfig adamw_config(const Attrs& attrs) {
  const char* op = "optim_adamw";
  const double lr = lr_attr(attrs, op);
  const double beta1 = unit_attr(attrs, op, "beta1", 0.9);
  const double beta2 = unit_attr(attrs, op, "beta2", 0.999);
  const double eps = finite_attr(attrs, op, "eps", 1e-8);
  const double wd = finite_attr(attrs, op, "weightDecay", 0.0);
  const double gscale = finite_attr(attrs, op, "gradScale", 1.0);
  const int64_t step = attrs.int_("step", 1);
  KX_CHECK(step >= 1, Arg, op, ": step must be >= 1 (1 on the first update), got ", step);
  KX_CHECK(beta1 < 1 && beta2 < 1, Arg, op, ": betas must be < 1");
  return {adamw_coef<double>(lr, beta1, beta2, eps, wd, (double)step), gscale};
}

struct SgdConfig {
  SgdCoef<double> coef;
  bool nesterov, first;
  double gscale;
};

// `buf` is the optional momentum buffer: required when momentum is not 0.
inline SgdConfig sgd_config(const Attrs& attrs, const Tensor& buf) {
  const char* op = "optim_sgd";
  SgdConfig c;
  c.coef.lr = lr_attr(attrs, op);
  c.coef.momentum = finite_attr(attrs, op, "momentum", 0.0);
  c.coef.dampening = finite_attr(attrs, op, "dampening", 0.0);
  c.coef.wd = finite_attr(attrs, op, "weightDecay", 0.0);
  c.nesterov = attrs.flag("nesterov", false);
  c.first = attrs.flag("first", false);
  c.gscale = finite_attr(attrs, op, "gradScale", 1.0);
  KX_CHECK(c.coef.momentum >= 0, Arg, op, ": momentum must be >= 0, got ", c.coef.momentum);
  KX_CHECK(c.coef.momentum == 0 || buf.defined(), Arg, op, ": momentum needs a buffer");
  return c;
}

}  // namespace kx
