// The math of LayerNorm and RMSNorm, written once for CPU and CUDA: per-element formulas and the
// serial row functions (one row in float32). Statistics are always float32, whatever x's dtype.
//
//   LayerNorm: mean = Σx/D, var = Σ(x−mean)²/D (two passes: no cancellation for rows with a large
//              mean), rstd = 1/√(var+eps), y = (x−mean)·rstd·γ + β.
//              With g = dy·γ and x̂ = (x−mean)·rstd: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)),
//              dγ = Σ_rows dy·x̂, dβ = Σ_rows dy.
//   RMSNorm:   rstd = 1/√(Σx²/D + eps), y = x·rstd·γ.
//              With g = dy·γ: dx = rstd·g − x·rstd³·mean(g·x), dγ = Σ_rows dy·x·rstd.
#pragma once
#include <cstdint>

#include "kx/convert.h"
#include "kx/math.h"
#include "kx/reduce.h"

namespace kx {

// Row sums use kReduceLanes independent accumulators combined in a fixed order (kx/reduce.h's
// block_sum / block_dot and combine_lanes): the lane loop vectorises without -ffast-math, the
// result does not depend on threads, and each accumulator sees only D/16 terms, which keeps long
// rows accurate in float32.

// Σ (x_i − c)²
KX_HD float row_sum_sq_dev(const float* x, int64_t n, float c) {
  float acc[kReduceLanes] = {};
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int j = 0; j < kReduceLanes; ++j) {
      const float d = x[i + j] - c;
      acc[j] += d * d;
    }
  for (int j = 0; i < n; ++i, ++j) {
    const float d = x[i] - c;
    acc[j] += d * d;
  }
  return combine_lanes(acc);
}

// Σ a_i·b_i·c_i
KX_HD float row_dot3(const float* a, const float* b, const float* c, int64_t n) {
  float acc[kReduceLanes] = {};
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int j = 0; j < kReduceLanes; ++j) acc[j] += a[i + j] * b[i + j] * c[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += a[i] * b[i] * c[i];
  return combine_lanes(acc);
}

KX_HD float norm_rstd(float mean_sq, float eps) { return 1.0f / sqrtf(mean_sq + eps); }

// --- LayerNorm ---------------------------------------------------------------------------------

struct RowStats {
  float mean;
  float rstd;
};

KX_HD RowStats layer_norm_row_stats(const float* x, int64_t n, float eps) {
  if (n <= 0) return {0.0f, norm_rstd(0.0f, eps)};
  const float mean = block_sum(x, n) / (float)n;
  const float var = row_sum_sq_dev(x, n, mean) / (float)n;
  return {mean, norm_rstd(var, eps)};
}

KX_HD float layer_norm_elem(float x, float mean, float rstd, float gamma, float beta) {
  return (x - mean) * rstd * gamma + beta;
}

// y = layer_norm(x) for one row; gamma/beta are float32 rows (ones/zeros when the op has none).
KX_HD RowStats layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps) {
  const RowStats s = layer_norm_row_stats(x, n, eps);
  for (int64_t i = 0; i < n; ++i) y[i] = layer_norm_elem(x[i], s.mean, s.rstd, gamma[i], beta[i]);
  return s;
}

// dx for one row, and the row's contributions dy·x̂ and dy added into dgamma/dbeta (float32 rows
// owned by the caller, so that the caller decides the reduction order). `xhat` is scratch of n.
// dx of one element, from g = dy·γ, x̂ and the row's means of g and g·x̂.
KX_HD float layer_norm_dx_elem(float dy, float gamma, float xhat, float rstd, float mean_g, float mean_gx) {
  return rstd * (dy * gamma - mean_g - xhat * mean_gx);
}

KX_HD void layer_norm_row_backward(const float* dy, const float* x, const float* gamma, float mean, float rstd,
                                   float* dx, float* xhat, float* dgamma, float* dbeta, int64_t n) {
  if (n <= 0) return;
  for (int64_t i = 0; i < n; ++i) xhat[i] = (x[i] - mean) * rstd;
  const float inv_n = 1.0f / (float)n;
  const float mean_g = block_dot(dy, gamma, n) * inv_n;
  const float mean_gx = row_dot3(dy, gamma, xhat, n) * inv_n;
  for (int64_t i = 0; i < n; ++i) {
    dx[i] = layer_norm_dx_elem(dy[i], gamma[i], xhat[i], rstd, mean_g, mean_gx);
    dgamma[i] += dy[i] * xhat[i];
    dbeta[i] += dy[i];
  }
}

// --- RMSNorm -----------------------------------------------------------------------------------

KX_HD float rms_norm_row_rstd(const float* x, int64_t n, float eps) {
  if (n <= 0) return norm_rstd(0.0f, eps);
  return norm_rstd(row_sum_sq_dev(x, n, 0.0f) / (float)n, eps);
}

KX_HD float rms_norm_elem(float x, float rstd, float gamma) { return x * rstd * gamma; }

KX_HD float rms_norm_row(const float* x, const float* gamma, float* y, int64_t n, float eps) {
  const float rstd = rms_norm_row_rstd(x, n, eps);
  for (int64_t i = 0; i < n; ++i) y[i] = rms_norm_elem(x[i], rstd, gamma[i]);
  return rstd;
}

// The backward's per-element pieces: c = rstd³·mean(g·x) per row, dx = rstd·g − x·c, dγ term dy·x·rstd.
KX_HD float rms_norm_dx_coef(float rstd, float mean_gx) { return rstd * rstd * rstd * mean_gx; }
KX_HD float rms_norm_dx_elem(float dy, float gamma, float x, float rstd, float c) { return rstd * dy * gamma - x * c; }
KX_HD float rms_norm_dgamma_elem(float dy, float x, float rstd) { return dy * x * rstd; }

// dx for one row; adds dy·x·rstd into dgamma.
KX_HD void rms_norm_row_backward(const float* dy, const float* x, const float* gamma, float rstd, float* dx,
                                 float* dgamma, int64_t n) {
  if (n <= 0) return;
  const float mean_gx = row_dot3(dy, gamma, x, n) / (float)n;
  const float c = rms_norm_dx_coef(rstd, mean_gx);
  for (int64_t i = 0; i < n; ++i) {
    dx[i] = rms_norm_dx_elem(dy[i], gamma[i], x[i], rstd, c);
    dgamma[i] += rms_norm_dgamma_elem(dy[i], x[i], rstd);
  }
}

}  // namespace kx
