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

#include "kx/math.h"

namespace kx {

// Whether key j is visible to query row i under the causal rule (offset = Tk - Tq).
KX_HD bool attn_causal_visible(int64_t i, int64_t j, int64_t offset) { return j <= i + offset; }

// The score that enters the softmax: the scaled product plus bias where kept, -inf where masked.
KX_HD float attn_score(float scaled_qk, float bias, bool keep) { return keep ? scaled_qk + bias : -INFINITY; }

// One step of the online softmax for one query row over a block of n scores. On entry *m is the
// running max and *l the running sum of exp(s - m) over earlier blocks (m = -inf, l = 0 at the
// start). Overwrites s with p_j = exp(s_j - m_new), updates m and l, and returns the factor
// exp(m_old - m_new) by which the row's output accumulator must be rescaled. While every score
// seen so far is -inf, p = 0 and the factor is 1 (the accumulator is still zero).
KX_HD float attn_online_update(float* s, int64_t n, float* m, float* l) {
  float block_max = -INFINITY;
  for (int64_t j = 0; j < n; ++j) block_max = s[j] > block_max ? s[j] : block_max;
  const float m_old = *m;
  const float m_new = block_max > m_old ? block_max : m_old;
  if (m_new == -INFINITY) {
    for (int64_t j = 0; j < n; ++j) s[j] = 0.0f;
    return 1.0f;
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float p = expf(s[j] - m_new);  // exp(-inf) = 0 for masked entries
    s[j] = p;
    sum += p;
  }
  const float corr = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
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
KX_HD float attn_prob(float s, float lse) { return lse == -INFINITY ? 0.0f : expf(s - lse); }

// Backward: d(score) from the probability, dP = dout . v_j and the row term D_i = dout_i . out_i
// (the softmax Jacobian applied to dP). It is also d(bias), and scale times it gives dq/dk.
KX_HD float attn_dscore(float p, float dp, float row_d) { return p * (dp - row_d); }

// Backward: D_i = dout_i . out_i, accumulated in float32 (double would not change the result at the
// lengths of a head dimension).
KX_HD float attn_row_dot(const float* dout, const float* out, int64_t n) {
  float acc = 0.0f;
  for (int64_t c = 0; c < n; ++c) acc += dout[c] * out[c];
  return acc;
}

}  // namespace kx
