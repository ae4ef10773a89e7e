// The row math of fused attention, shared by the CPU kernel (ops/attention.cpp) and the CUDA one.
//
//   scores s_ij = scale * q_i . k_j + bias_ij, kept where mask_ij and (not causal or j <= i + Tk - Tq)
//   out_i = sum_j softmax(s_i)_j v_j,  lse_i = log sum_j exp(s_ij)
//
// Masked scores are -inf by select (never x*mask - 1e12), so a fully masked row has lse = -inf, and
// its output and gradients are exactly zero instead of NaN. Causal masking is aligned to the
// bottom-right corner when Tq != Tk (flash-attention >= 2.1, and what a key/value cache needs: the
// last query sees every key); query rows i < Tq - Tk then see no key and yield zeros.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/dtype.h"
#include "kx/math.h"

namespace kx {

// Whether key j is visible to query row i under the causal rule (offset = Tk - Tq).
KX_HD bool attn_causal_visible(int64_t i, int64_t j, int64_t offset) { return j <= i + offset; }

// The score that enters the softmax: the scaled product plus bias where kept, -inf where masked.
KX_HD float attn_score(float scaled_qk, float bias, bool keep) { return keep ? scaled_qk + bias : -INFINITY; }

// exp for the softmax rows. On the CPU: Cody-Waite range reduction and Cephes' degree-6 polynomial
// (relative error < 1e-7 on [-87, 88], measured), branch-free so that -O3 vectorises the row
// loops, which libm's expf does not. Exactly 0 below -87.3 (so masked -inf scores give p = 0),
// inf above 88 (softmax arguments are <= 0; this keeps 2^n a normal float), NaN kept. Under nvcc the device's expf.
KX_HD float attn_exp(float x) {
#if defined(__CUDACC__)
  return expf(x);
#else
  // Ternaries, not fminf/fmaxf: those are libm calls without -ffast-math and stop vectorisation.
  float xc = x > -87.33f ? x : -87.33f;
  xc = xc < 88.0f ? xc : 88.0f;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (floorf is a libm call here too).
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float two_n = bits_float((uint32_t)((int32_t)n + 127) << 23);
  const float e = y * two_n;
  return x < -87.33f ? 0.0f : x > 88.0f ? INFINITY : x != x ? x : e;
#endif
}

// Max and sum of a row with eight independent lanes: float reductions do not vectorise otherwise
// (without -ffast-math the compiler may not reassociate them).
KX_HD float attn_row_max(const float* s, int64_t n) {
  float lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; ++u) lane[u] = s[j + u] > lane[u] ? s[j + u] : lane[u];
  for (; j < n; ++j) lane[0] = s[j] > lane[0] ? s[j] : lane[0];
  float m = lane[0];
  for (int u = 1; u < 8; ++u) m = lane[u] > m ? lane[u] : m;
  return m;
}

KX_HD float attn_row_sum(const float* s, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int u = 0; u < 8; ++u) lane[u] += s[j + u];
  for (; j < n; ++j) lane[0] += s[j];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// One step of the online softmax for one query row over a block of n scores. On entry *m is the
// running max and *l the running sum of exp(s - m) over earlier blocks (m = -inf, l = 0 at the
// start). Overwrites s with p_j = exp(s_j - m_new), updates m and l, and returns the factor
// exp(m_old - m_new) by which the row's output accumulator must be rescaled. While every score
// seen so far is -inf, p = 0 and the factor is 1 (the accumulator is still zero).
KX_HD float attn_online_update(float* s, int64_t n, float* m, float* l) {
  const float block_max = attn_row_max(s, n);
  const float m_old = *m;
  const float m_new = block_max > m_old ? block_max : m_old;
  if (m_new == -INFINITY) {
    for (int64_t j = 0; j < n; ++j) s[j] = 0.0f;
    return 1.0f;
  }
  for (int64_t j = 0; j < n; ++j) s[j] = attn_exp(s[j] - m_new);  // exp(-inf) = 0 for masked entries
  const float sum = attn_row_sum(s, n);
  const float corr = m_old == -INFINITY ? 0.0f : attn_exp(m_old - m_new);
  *l = *l * corr + sum;
  *m = m_new;
  return corr;
}

// After the last block: the factor that turns the accumulator into the output (0 for a fully
// masked row) and the row's logsumexp (-inf for a fully masked row).
KX_HD float attn_finish(float m, float l, float* lse) {
  if (!(l > 0.0f)) {
    *lse = -INFINITY;
    return 0.0f;
  }
  *lse = m + logf(l);
  return 1.0f / l;
}

// Backward: the probability recomputed from a score and its row's logsumexp (0 on masked entries
// and on fully masked rows).
KX_HD float attn_prob(float s, float lse) { return lse == -INFINITY ? 0.0f : attn_exp(s - lse); }

// Backward: d(score) from the probability, dP = dout . v_j and the row term D_i = dout_i . out_i
// (the softmax Jacobian applied to dP). It is also d(bias), and scale times it gives dq/dk.
KX_HD float attn_dscore(float p, float dp, float row_d) { return p * (dp - row_d); }

// Backward: D_i = dout_i . out_i, accumulated in float32 over eight lanes (head dims are short).
KX_HD float attn_row_dot(const float* dout, const float* out, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) lane[u] += dout[c + u] * out[c + u];
  for (; c < n; ++c) lane[0] += dout[c] * out[c];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

}  // namespace kx
