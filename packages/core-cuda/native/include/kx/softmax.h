// The math of one softmax row, shared by CPU and CUDA: stable softmax / log-softmax (shifted by the
// row max), logsumexp, their backward rows, and the softmax cross-entropy of one row. Sums of the
// exponentials go through the pairwise cascade of kx/reduce.h, so 21128-class rows stay accurate.
#pragma once
#include <cstdint>

#include "kx/reduce.h"

namespace kx {

// exp(x) in float32 within ~2 ulp, branch-free so that loops of it vectorise on the CPU (glibc's
// expf is a scalar call there). Cephes' range reduction x = n·ln2 + r and degree-6 polynomial;
// 2^n applied in two halves so that n in [-126, 128] never leaves the exponent range.
// exp(-inf) = 0 exactly (masked logits), below -87.34 flushes to 0, above 88.72 is +inf, NaN stays.
KX_HD float exp_f32(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  const float xc = x < -87.3365f ? -87.3365f : (x > 88.7228f ? 88.7228f : x);
  // round to nearest by the 1.5·2^23 trick: floorf does not vectorise without -ffast-math
  const float fx = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  const int32_t n = (int32_t)fx;
  const int32_t n1 = n >> 1, n2 = n - n1;
  // union punning (defined in GCC/Clang) vectorises where memcpy through locals does not
  union { int32_t i; float f; } s1, s2;
  s1.i = (n1 + 127) << 23;
  s2.i = (n2 + 127) << 23;
  const float y = p * s1.f * s2.f;
  return x != x ? x : (x < -87.3365f ? 0.0f : (x > 88.7228f ? INFINITY : y));
#endif
}

KX_HD float log_f32(float x) { return logf(x); }

// sum_i exp(x_i - m), pairwise; also stores the exponentials in y when y is not null.
KX_HD float sum_exp_shifted(const float* x, float* y, int64_t n, float m) {
  PairwiseSum p;
  float buf[kSumBlock];
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = n - i < kSumBlock ? n - i : kSumBlock;
    float* e = y ? y + i : buf;
    for (int64_t k = 0; k < len; ++k) e[k] = exp_f32(x[i + k] - m);
    p.add(block_sum(e, len));
  }
  return p.result();
}

// log(sum_i exp(x_i)), stable (shifted by the max). An all -inf row gives -inf, a NaN gives NaN.
KX_HD float logsumexp_row(const float* x, int64_t n) {
  const float m = row_max(x, n);
  if (m == -INFINITY || m == INFINITY || m != m) return m;
  return m + log_f32(sum_exp_shifted(x, nullptr, n, m));
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
  const float ls = log_f32(sum_exp_shifted(x, nullptr, n, m));
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
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - exp_f32(y[i]) * s;
}

// Cross-entropy of one row: logsumexp(x) - x[label]; the logsumexp goes to *lse for the backward.
KX_HD float cross_entropy_row(const float* x, int64_t n, int64_t label, float* lse) {
  *lse = logsumexp_row(x, n);
  return *lse - x[label];
}

// d/dx of scale * CE(row): scale * (softmax(x) - onehot(label)), with softmax from the saved lse.
KX_HD void cross_entropy_backward_row(const float* x, float* dx, int64_t n, int64_t label, float lse, float scale) {
  for (int64_t i = 0; i < n; ++i) dx[i] = scale * exp_f32(x[i] - lse);
  dx[label] -= scale;
}

}  // namespace kx
