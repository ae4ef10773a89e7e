// The row math of fused attention, shared by the CPU kernel (attention.cpp) and the CUDA one.
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
#include "kx/reduce.h"

namespace kx {

// Whether key j is visible to query row i under the causal rule (offset = Tk - Tq).
KX_HD bool attn_causal_visible(int64_t i, int64_t j, int64_t offset) { return j <= i + offset; }

// The score that enters the softmax: the scaled product plus bias where kept, -inf where masked.
KX_HD float attn_score(float scaled_qk, float bias, bool keep) { return keep ? scaled_qk + bias : -INFINITY; }

// The CPU's row loops are kx/simd.h's vector runs: row_max, sum_exp_shifted (exp(-inf) = 0 for
// masked scores), block_sum and block_dot in kx/reduce.h's lane order, and exp_shifted_run (the
// backward recomputes a row's probabilities with it from the row's logsumexp).

// The factor exp(m_old - m_new) that rescales a row's output accumulator when its running max moves
// from m_old to m_new: 1 while every score seen is -inf (the accumulator is still zero), 0 when the
// first finite score arrives.
KX_HD float attn_rescale(float m_old, float m_new) {
  if (m_new == -INFINITY) return 1.0f;
  return m_old == -INFINITY ? 0.0f : exp_fast(m_old - m_new);
}

// The weight exp(s - m) of one score under the row max (or logsumexp) m: 0 while m is -inf, so a row
// with no visible key has no probability mass. (The CPU loops run exp_shifted_run over whole runs.)
KX_HD float attn_prob(float s, float m) { return m == -INFINITY ? 0.0f : exp_fast(s - m); }

// One step of the online softmax for one query row over a block of n scores. On entry *m is the
// running max and *l the running sum of exp(s - m) over earlier blocks (m = -inf, l = 0 at the
// start). Overwrites s with p_j = exp(s_j - m_new), updates m and l, and returns the factor
// exp(m_old - m_new) by which the row's output accumulator must be rescaled. While every score
// seen so far is -inf, p = 0 and the factor is 1 (the accumulator is still zero). CPU only (n is at
// most kSumBlock: the key block).
inline float attn_online_update(float* s, int64_t n, float* m, float* l) {
  const float block_max = simd::row_max(s, n);
  const float m_old = *m;
  // A NaN score makes the running max NaN, so the row's output is NaN (as PyTorch), whichever
  // block it sits in.
  const float m_new = max_nan(m_old, block_max);
  if (m_new == -INFINITY) {
    for (int64_t j = 0; j < n; ++j) s[j] = 0.0f;
    return 1.0f;
  }
  const float sum = simd::sum_exp_shifted(s, s, n, m_new);  // exp(-inf) = 0 for masked entries
  const float corr = attn_rescale(m_old, m_new);
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

// Backward: d(score) from the probability, dP = dout . v_j and the row term D_i = dout_i . out_i
// (the softmax Jacobian applied to dP). It is also d(bias), and scale times it gives dq/dk.
KX_HD float attn_dscore(float p, float dp, float row_d) { return p * (dp - row_d); }

}  // namespace kx
