// The math of a softmax row, shared by CPU and CUDA: stable softmax / log-softmax (shifted by the
// row max), their backward and the softmax cross-entropy's gradient, as per-element formulas
// (kx/softmax_formulas.inc, which the CPU's row runs share: kx/simd.h's softmax_row and the rest,
// native/cpu/simd/rows.cpp), and the one-pass row state of the CUDA kernels. Sums of the
// exponentials go through the pairwise cascade of kx/reduce.h, so 21128-class rows stay accurate.
// exp is kx/math.h's exp_fast: exp(-inf) = 0 for masked logits.
#pragma once
#include <cstdint>

#include "kx/reduce.h"

namespace kx {

#include "kx/softmax_formulas.inc"

// The formulas with an exponential, on one element (m the row max, s the sum of exp(x - m),
// sum_dy = sum(dy)).
KX_HD float softmax_elem(float x, float m, float inv_s) { return softmax_from_(exp_fast(x - m), inv_s); }
KX_HD float log_softmax_backward_elem(float y, float dy, float sum_dy) {
  return log_softmax_backward_from_(dy, exp_fast(y), sum_dy);
}
// scale * (softmax(x) - onehot(label)) with k = scale / s.
KX_HD float cross_entropy_grad_elem(float x, float m, float k, float scale, bool is_label) {
  return softmax_from_(exp_fast(x - m), k) - (is_label ? scale : 0.0f);
}

// The row max and the sum of exp(x - max) accumulated in one pass over a row in any order (the
// CUDA kernels' online softmax: each thread folds its elements, then the states merge). sum() and
// lse() are those of the CPU's two-pass rows: an all -inf, +inf or NaN maximum gives a NaN sum
// (exp(-inf - -inf) on the CPU) and lse() = max; -inf elements add exactly 0.
struct OnlineSoftmax {
  float max = -INFINITY;
  float s = 0.0f;
  KX_HD void add(float x) {
    if (x > max) {
      s = s * exp_fast(max - x) + 1.0f;
      max = x;
    } else if (x != x) {
      max = x;
    } else if (x != -INFINITY) {
      s += exp_fast(x - max);
    }
  }
  KX_HD void merge(const OnlineSoftmax& o) {
    const float m = max_nan(max, o.max);
    if (m > -INFINITY && m < INFINITY) s = s * exp_fast(max - m) + o.s * exp_fast(o.max - m);
    max = m;
  }
  KX_HD bool finite_max() const { return max > -INFINITY && max < INFINITY; }
  KX_HD float sum() const { return finite_max() ? s : NAN; }
  KX_HD float lse() const { return finite_max() ? max + logf(s) : max; }
};

}  // namespace kx
