// RoPE with interleaved pairs (ALGORITHMS.md §6, bert4keras / RoFormer), written once for CPU and
// CUDA. For head dim D (even) and position m, pair i = (x_2i, x_2i+1) turns by the angle m·θ_i with
// θ_i = 10000^(−2i/D):
//   y_2i   = x_2i·cos(mθ_i) − x_2i+1·sin(mθ_i)
//   y_2i+1 = x_2i+1·cos(mθ_i) + x_2i·sin(mθ_i)
// The inverse (the transpose, which is also the gradient) turns by −m·θ_i.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/math.h"

namespace kx {

constexpr double kRopeBase = 10000.0;

// θ_i = base^(−2i/D), computed in double and rounded once to float32.
KX_HD float rope_theta(int64_t i, int64_t d) { return (float)pow(kRopeBase, -2.0 * (double)i / (double)d); }

// The angle m·θ_i as a float32 product, as the reference implementations compute it (so large m
// carries float32's rounding of the product, the same rounding bert4keras and RoFormer have).
KX_HD float rope_angle(int32_t position, float theta) { return (float)position * theta; }

// Rotates one pair by the angle whose cosine and sine are c and s (by −angle when inverse).
KX_HD void rope_rotate_pair(float x0, float x1, float c, float s, bool inverse, float* y0, float* y1) {
  if (inverse) s = -s;
  *y0 = x0 * c - x1 * s;
  *y1 = x1 * c + x0 * s;
}

}  // namespace kx
