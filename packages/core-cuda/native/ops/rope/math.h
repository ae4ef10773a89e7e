// RoPE (ALGORITHMS.md §6), written once for CPU and CUDA. Of the first r (the rotary dim, even)
// channels of a row, pair i < r/2 turns by the angle m·θ_i, θ_i = base^(−2i/r) unless explicit
// frequencies are given; channels r … D−1 pass through. The pair (a, b) of pair i is
//   interleaved (bert4keras / RoFormer): (2i, 2i+1);  rotate-half (GPT-NeoX / LLaMA): (i, i + r/2),
// and either way y_a = x_a·cos − x_b·sin, y_b = x_b·cos + x_a·sin. The inverse (the transpose, which
// is also the gradient) turns by −m·θ_i.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/math.h"

namespace kx {

constexpr double kRopeBase = 10000.0;

// θ_i = base^(−2i/r), computed in double and rounded once to float32.
KX_HD float rope_theta(int64_t i, int64_t r, double base) { return (float)pow(base, -2.0 * (double)i / (double)r); }

// The angle (m / scale)·θ_i in float32, as the reference implementations form it: the position as a
// float32, divided by the linear-interpolation scale (exact for scale 1), times θ_i. Large m carries
// float32's rounding of the product, the same rounding bert4keras, RoFormer and LLaMA code have.
KX_HD float rope_angle(int64_t position, float scale, float theta) { return ((float)position / scale) * theta; }

// The channels (a, b) of pair i in a row whose rotated part has half = r/2 pairs.
KX_HD void rope_pair(int64_t i, int64_t half, bool rotate_half, int64_t* a, int64_t* b) {
  *a = rotate_half ? i : 2 * i;
  *b = rotate_half ? i + half : 2 * i + 1;
}

// Rotates one pair by the angle whose cosine and sine are c and s (by −angle when inverse).
KX_HD void rope_rotate_pair(float x0, float x1, float c, float s, bool inverse, float* y0, float* y1) {
  if (inverse) s = -s;
  *y0 = x0 * c - x1 * s;
  *y1 = x1 * c + x0 * s;
}

}  // namespace kx
