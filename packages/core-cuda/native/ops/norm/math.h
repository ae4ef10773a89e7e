// The math of LayerNorm and RMSNorm, written once for CPU and CUDA: the per-element formulas
// (ops/norm/formulas.inc, which the CPU's row runs in native/cpu/simd/rows.cpp share) and the
// per-row scalars. Statistics are always float32, whatever x's dtype.
//
//   LayerNorm: mean = Σx/D, var = Σ(x−mean)²/D (two passes: no cancellation for rows with a large
//              mean), rstd = 1/√(var+eps), y = (x−mean)·rstd·γ + β.
//              With g = dy·γ and x̂ = (x−mean)·rstd: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)),
//              dγ = Σ_rows dy·x̂, dβ = Σ_rows dy.
//   RMSNorm:   rstd = 1/√(Σx²/D + eps), y = x·rstd·γ.
//              With g = dy·γ: dx = rstd·g − x·rstd³·mean(g·x), dγ = Σ_rows dy·x·rstd.
//
// The CPU's row sums are kx/reduce.h's lane sums (kReduceLanes accumulators folded in a fixed
// order): the same bits whatever the thread count, and each accumulator sees only D/32 terms, which
// keeps long rows accurate in float32.
#pragma once
#include <cstdint>

#include "kx/math.h"

namespace kx {

KX_HD float norm_rstd(float mean_sq, float eps) { return 1.0f / sqrtf(mean_sq + eps); }

// RMSNorm's backward: the per-row c = rstd³·mean(g·x) of dx = rstd·g − x·c.
KX_HD float rms_norm_dx_coef(float rstd, float mean_gx) { return rstd * rstd * rstd * mean_gx; }

#include "ops/norm/formulas.inc"

}  // namespace kx
