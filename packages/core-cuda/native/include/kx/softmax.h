// The math of one softmax row, shared by CPU and CUDA: stable softmax / log-softmax (shifted by the
// row max), logsumexp, their backward rows, and the softmax cross-entropy of one row. Sums of the
// exponentials go through the pairwise cascade of kx/reduce.h, so 21128-class rows stay accurate.
// exp is kx/math.h's exp_fast (exp_shifted_run over a run): vectorised on the CPU, exp(-inf) = 0
// for masked logits.
#pragma once
#include <cstdint>

#include "kx/reduce.h"

namespace kx {

// sum_i exp(x_i - m), pairwise; also stores the exponentials in y when y is not null.
KX_HD float sum_exp_shifted(const float* x, float* y, int64_t n, float m) {
  PairwiseSum p;
  float buf[kSumBlock];
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = n - i < kSumBlock ? n - i : kSumBlock;
    float* e = y ? y + i : buf;
    exp_shifted_run(x + i, e, len, m);
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
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - ls;
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
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - dot);
}

// dx from y = log_softmax(x): dx = dy - exp(y) * sum(dy).
KX_HD void log_softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  const float s = row_sum(dy, n);
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - exp_fast(y[i]) * s;
}

// Cross-entropy of one row: logsumexp(x) - x[label]; the logsumexp goes to *lse for the backward.
KX_HD float cross_entropy_row(const float* x, int64_t n, int64_t label, float* lse) {
  *lse = logsumexp_row(x, n);
  return *lse - x[label];
}

// d/dx of scale * CE(row): scale * (softmax(x) - onehot(label)), with softmax from the saved lse.
KX_HD void cross_entropy_backward_row(const float* x, float* dx, int64_t n, int64_t label, float lse, float scale) {
  exp_shifted_run(x, dx, n, lse);
  for (int64_t i = 0; i < n; ++i) dx[i] *= scale;
  dx[label] -= scale;
}

}  // namespace kx
