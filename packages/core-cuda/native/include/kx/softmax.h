// The math of one softmax row, shared by CPU and CUDA: stable softmax / log-softmax (shifted by the
// row max), logsumexp, their backward rows, and the softmax cross-entropy of one row. Sums of the
// exponentials go through the pairwise cascade of kx/reduce.h, so 21128-class rows stay accurate.
// exp is kx/math.h's exp_fast (exp_shifted_run over a run): vectorised on the CPU, exp(-inf) = 0
// for masked logits.
#pragma once
#include <cstdint>

#include "kx/reduce.h"

namespace kx {

// Per-element formulas of the rows below, also run by the CUDA kernels (m the row max, s the sum of
// exp(x - m), dot = sum(dy * y), sum_dy = sum(dy)).
KX_HD float softmax_elem(float x, float m, float inv_s) { return exp_fast(x - m) * inv_s; }
KX_HD float log_softmax_elem(float x, float m, float log_s) { return (x - m) - log_s; }
KX_HD float softmax_backward_elem(float y, float dy, float dot) { return y * (dy - dot); }
KX_HD float log_softmax_backward_elem(float y, float dy, float sum_dy) { return dy - exp_fast(y) * sum_dy; }
// scale * (softmax(x) - onehot(label)) with k = scale / s.
KX_HD float cross_entropy_grad_elem(float x, float m, float k, float scale, bool is_label) {
  return exp_fast(x - m) * k - (is_label ? scale : 0.0f);
}

// The row max and the sum of exp(x - max) accumulated in one pass over a row in any order (the
// CUDA kernels' online softmax: each thread folds its elements, then the states merge). sum() and
// lse() are those of the two-pass rows above: an all -inf, +inf or NaN maximum gives a NaN sum
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

// sum_i exp(x_i - m), pairwise; also stores the exponentials in y when y is not null (then in one
// run over the row: a call of the CPU's dispatched vector run per block cost a third of softmax).
KX_HD float sum_exp_shifted(const float* x, float* y, int64_t n, float m) {
  PairwiseSum p;
  float buf[kSumBlock];
  if (y) exp_shifted_run(x, y, n, m);
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = n - i < kSumBlock ? n - i : kSumBlock;
    float* e = y ? y + i : buf;
    if (!y) exp_shifted_run(x + i, e, len, m);
    p.add(block_sum(e, len));
  }
  return p.result();
}

// log(sum_i exp(x_i)), stable (shifted by the max). An all -inf row gives -inf, a NaN gives NaN.
KX_HD float logsumexp_row(const float* x, int64_t n) {
  const float m = row_max(x, n);
  if (m == -INFINITY || m == INFINITY || m != m) return m;
  return m + logf(sum_exp_shifted(x, nullptr, n, m));
}

// y = softmax(x). A row of all -inf gives NaN, as PyTorch.
KX_HD void softmax_row(const float* x, float* y, int64_t n) {
  const float m = row_max(x, n);
  const float inv = 1.0f / sum_exp_shifted(x, y, n, m);
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

// y = log_softmax(x) = (x - max) - log(sum exp(x - max)); y may alias x.
KX_HD void log_softmax_row(const float* x, float* y, int64_t n) {
  const float m = row_max(x, n);
  const float ls = logf(sum_exp_shifted(x, nullptr, n, m));
  for (int64_t i = 0; i < n; ++i) y[i] = log_softmax_elem(x[i], m, ls);
}

// dx from y = softmax(x): dx = y * (dy - sum(dy * y)).
KX_HD void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  PairwiseSum p;
  float buf[kSumBlock];
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = n - i < kSumBlock ? n - i : kSumBlock;
    for (int64_t k = 0; k < len; ++k) buf[k] = dy[i + k] * y[i + k];
    p.add(block_sum(buf, len));
  }
  const float dot = p.result();
  for (int64_t i = 0; i < n; ++i) dx[i] = softmax_backward_elem(y[i], dy[i], dot);
}

// dx from y = log_softmax(x): dx = dy - exp(y) * sum(dy).
KX_HD void log_softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  const float s = row_sum(dy, n);
  for (int64_t i = 0; i < n; ++i) dx[i] = log_softmax_backward_elem(y[i], dy[i], s);
}

// Cross-entropy of one row: logsumexp(x) - x[label].
KX_HD float cross_entropy_row(const float* x, int64_t n, int64_t label) { return logsumexp_row(x, n) - x[label]; }

// The cross-entropy of one row (as cross_entropy_row, bit for bit) and, in dx, its gradient
// scale * (softmax(x) - onehot(label)) from one pass of exponentials: dx first holds exp(x - max),
// then is scaled by scale / their sum. A NaN or infinite maximum gives a NaN gradient.
KX_HD float cross_entropy_row_grad(const float* x, float* dx, int64_t n, int64_t label, float scale) {
  const float m = row_max(x, n);
  const float s = sum_exp_shifted(x, dx, n, m);
  const float k = scale / s;
  for (int64_t i = 0; i < n; ++i) dx[i] *= k;
  dx[label] -= scale;
  const float lse = (m == -INFINITY || m == INFINITY || m != m) ? m : m + logf(s);
  return lse - x[label];
}

}  // namespace kx
