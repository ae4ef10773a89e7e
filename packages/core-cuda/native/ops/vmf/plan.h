// The validated attributes of the vMF ops, shared by the CPU (vmf.cpp) and CUDA (vmf.cu) kernels
// so that both reject the same calls.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/philox_key.h"
#include "kx/registry.h"
#include "kx/tensor.h"
#include "ops/vmf/math.h"

namespace kx {

// d (an integer >= 2: the sphere S^{d-1} in R^d) and κ (finite, >= 0).
inline void vmf_check_d_kappa(const char* op, double d, double kappa) {
  KX_CHECK(std::isfinite(d) && d >= 2 && d == std::floor(d) && d <= 1e6, Arg, op, ": d must be an integer in [2, 1e6], got ", d);
  // above 1e8 Wood's constants lose their meaning in double (b → 0, x0 → 1) and the accept test could
  // turn NaN; a vMF that concentrated is a point for any float32 use anyway
  KX_CHECK(std::isfinite(kappa) && kappa >= 0 && kappa <= 1e8, Arg, op, ": kappa must be in [0, 1e8], got ", kappa);
}

// The inverse-CDF table's grid: step δ in (0, 1], n = the points -1 + (k+1)δ below 1.
struct VmfGrid {
  double delta;
  int64_t n;
};

inline VmfGrid vmf_grid(const Attrs& attrs, const char* op) {
  const double delta = attrs.num("delta", 0.0);
  KX_CHECK(std::isfinite(delta) && delta >= 1e-9 && delta <= 0.5, Arg, op, ": delta must be in [1e-9, 0.5], got ", delta);
  // the largest k with -1 + (k+1)δ < 1, robust to 2/δ landing a rounding error off an integer
  int64_t n = (int64_t)std::floor(2.0 / delta);
  while (n > 1 && vmf_grid_point(n - 1, delta) >= 1.0 - 1e-12) --n;
  return {delta, n};
}

struct VmfIcdfPlan {
  double delta;
  int64_t n;       // table length
  int64_t count;   // draws
  uint64_t seed;
  uint64_t offset;
};

inline VmfIcdfPlan vmf_icdf_plan(const Tensor& cdf, const Attrs& attrs) {
  KX_CHECK(cdf.dtype == DType::Float32, DType, "vmf_sample_icdf: the table must be float32, got ", dtype_name(cdf.dtype));
  KX_CHECK(cdf.shape.size() == 1 && cdf.numel() >= 2, Shape, "vmf_sample_icdf: the table must be 1-D with at least 2 entries");
  const VmfGrid g = vmf_grid(attrs, "vmf_sample_icdf");
  KX_CHECK(g.n == cdf.numel(), Shape, "vmf_sample_icdf: a table of ", cdf.numel(), " entries is not the grid of delta ", g.delta,
           " (", g.n, " points)");
  const double count = attrs.num("count", -1.0);
  KX_CHECK(std::isfinite(count) && count >= 0 && count == std::floor(count) && count <= kMaxExactInt, Arg,
           "vmf_sample_icdf: count must be an integer >= 0, got ", count);
  const PhiloxKey key = philox_key(attrs, "vmf_sample_icdf", (int64_t)count);
  return {g.delta, g.n, (int64_t)count, key.seed, key.offset};
}

inline VmfWoodParams vmf_wood_plan(const Tensor& like, const Attrs& attrs) {
  const double d = attrs.num("d", 0.0);
  const double kappa = attrs.num("kappa", -1.0);
  vmf_check_d_kappa("vmf_sample_wood", d, kappa);
  const PhiloxKey key = philox_key(attrs, "vmf_sample_wood", like.numel());
  return vmf_wood_params(d, kappa, key.seed, key.offset);
}

// vmf_compose's layout: mu and eps [B, d], w [B], one dtype (dz too for the backward).
struct VmfComposePlan {
  int64_t rows;
  int64_t d;
};

inline VmfComposePlan vmf_compose_plan(const Inputs& in, const char* op) {
  const Tensor& mu = in[0];
  const Tensor& w = in[1];
  const Tensor& eps = in[2];
  KX_CHECK(mu.shape.size() == 2, Shape, op, ": mu must be [B, d], got ", mu.shape.size(), " dims");
  const int64_t B = mu.shape[0], d = mu.shape[1];
  KX_CHECK(w.shape.size() == 1 && w.shape[0] == B, Shape, op, ": w must be [", B, "]");
  KX_CHECK(eps.shape == mu.shape, Shape, op, ": eps must have mu's shape [", B, ", ", d, "]");
  for (size_t i = 1; i < in.size(); ++i)
    KX_CHECK(in[i].dtype == mu.dtype, DType, op, ": every input must be ", dtype_name(mu.dtype), ", got ", dtype_name(in[i].dtype));
  if (in.size() > 3) KX_CHECK(in[3].shape == mu.shape, Shape, op, ": dz must have mu's shape [", B, ", ", d, "]");
  return {B, d};
}

}  // namespace kx
