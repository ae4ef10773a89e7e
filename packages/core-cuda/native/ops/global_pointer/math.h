// GlobalPointer scoring and the multilabel categorical cross-entropy (ALGORITHMS.md §2.2–2.5),
// the math of one entry or one row written once for CPU and CUDA.
//
// Scores: s[b,h,i,j] = scale·<q[b,g,i], k[b,g,j]> + start[b,h,i] + end[b,h,j], kept only where
// tokens i and j are both real and (with tril) j ≥ i; every other entry is −∞ by select.
//
// Multilabel CE of one row of scores s with labels t ∈ [0, 1] (t = 1 positive, 0 negative):
//   L = ln(1 + Σ_i (1−t_i)·e^{s_i}) + ln(1 + Σ_i t_i·e^{−s_i}),
// each term a logsumexp over {s_i + ln(1−t_i)} ∪ {0} (resp. {−s_i + ln t_i} ∪ {0}) that skips
// −∞ terms; entries whose score is −∞ (masked) take part in neither sum.
// Sparse form (positive indices only): pos = ln(1 + Σ_P e^{−s}), a = ln(1 + Σ_A e^{s}),
// b = ln Σ_P e^{s}, neg = a + ln(clip(1 − e^{b−a}, eps, 1)).
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/dtype.h"
#include "kx/math.h"

namespace kx {

// Whether span (i, j) of a row survives the padding and lower-triangle masks.
KX_HD bool gp_keep(bool real_i, bool real_j, int64_t i, int64_t j, bool tril) {
  return real_i && real_j && (!tril || j >= i);
}

// One score: the scaled dot product plus the start (row i) and end (column j) terms, or −∞.
KX_HD float gp_score(bool keep, float dot, float scale, float start_i, float end_j) {
  return keep ? dot * scale + start_i + end_j : -INFINITY;
}

// The log-weight of entry i in the negative sum: s + ln(1 − t); −∞ when t ≥ 1 or s = −∞.
KX_HD float mlce_neg_logit(float s, float t) {
  if (s == -INFINITY || t >= 1.0f) return -INFINITY;
  return t <= 0.0f ? s : s + logf(1.0f - t);
}

// The log-weight of entry i in the positive sum: −s + ln t; −∞ when t ≤ 0 or s = −∞.
KX_HD float mlce_pos_logit(float s, float t) {
  if (s == -INFINITY || t <= 0.0f) return -INFINITY;
  return t >= 1.0f ? -s : -s + logf(t);
}

// Online logsumexp over a stream of log-weights that always holds the extra element 0, so a row
// of nothing but −∞ gives 0 (never NaN). A NaN or +∞ weight makes the result NaN / +∞.
struct LseWithZero {
  float m = 0.0f;    // running max (starts at the 0 element)
  float sum = 1.0f;  // Σ e^{v − m}, the 0 element included
  KX_HD void add(float v) {
    if (v == -INFINITY) return;
    if (v != v || v == INFINITY) {
      m = v;
      return;
    }
    if (m != m || m == INFINITY) return;
    if (v <= m) {
      sum += exp_fast(v - m);
    } else {
      sum = sum * exp_fast(m - v) + 1.0f;
      m = v;
    }
  }
  KX_HD float result() const { return (m != m || m == INFINITY) ? m : m + logf(sum); }
};

// Online logsumexp without the extra element (−∞ when empty).
struct Lse {
  float m = -INFINITY;
  float sum = 0.0f;
  KX_HD void add(float v) {
    if (v == -INFINITY) return;
    if (v != v || v == INFINITY) {
      m = v;
      return;
    }
    if (m != m || m == INFINITY) return;
    if (m == -INFINITY) {
      m = v;
      sum = 1.0f;
    } else if (v <= m) {
      sum += exp_fast(v - m);
    } else {
      sum = sum * exp_fast(m - v) + 1.0f;
      m = v;
    }
  }
  // Folds in the state of a run of later elements (a parallel reduction's partial): as add(), a NaN
  // or +inf term decides the result.
  KX_HD void merge(const Lse& o) {
    if (o.m == -INFINITY) return;
    if (o.m != o.m || o.m == INFINITY) {
      m = o.m;
      return;
    }
    if (m != m || m == INFINITY) return;
    if (m == -INFINITY) {
      *this = o;
    } else if (o.m <= m) {
      sum += o.sum * exp_fast(o.m - m);
    } else {
      sum = sum * exp_fast(m - o.m) + o.sum;
      m = o.m;
    }
  }
  KX_HD float result() const { return (m == -INFINITY || m != m || m == INFINITY) ? m : m + logf(sum); }
};

// e^{v − lse}, 0 for v = −∞ (the weight of one element in a logsumexp's gradient).
KX_HD float lse_weight(float v, float lse) { return v == -INFINITY ? 0.0f : exp_fast(v - lse); }

// d L / d s_i of the dense form, with ln_neg, ln_pos the row's two logsumexps and g d L.
KX_HD float mlce_grad(float s, float t, float ln_neg, float ln_pos, float g) {
  return g * (lse_weight(mlce_neg_logit(s, t), ln_neg) - lse_weight(mlce_pos_logit(s, t), ln_pos));
}

// Sparse form: the negative term from a = ln(1 + Σ_A e^s) and b = ln Σ_P e^s, with the clip of
// 1 − e^{b−a} to [eps, 1]. *dfactor receives d neg/d b (d neg/d a is 1 − *dfactor): −r/(1−r)
// inside the clip range and 0 where the clip is active (the clip's gradient is zero there).
KX_HD float sparse_mlce_neg(float a, float b, float eps, float* dfactor) {
  const float r = b == -INFINITY ? 0.0f : expf(b - a);
  const float u = 1.0f - r;
  if (u < eps) {
    *dfactor = 0.0f;
    return a + logf(eps);
  }
  *dfactor = -r / u;
  return a + log1pf(-r);
}

// Sparse form, the terms over one row's positive indices (in their order, repeats counted, index 0
// skipped under mask_zero): *b = ln Σ_P e^s and *pos = ln(1 + Σ_P e^{−s}).
template <class T>
KX_HD void sparse_mlce_positives(const T* s, const int32_t* idx, int64_t P, bool mask_zero, float* b, float* pos) {
  LseWithZero pos_term;
  Lse b_term;
  for (int64_t k = 0; k < P; ++k) {
    const int32_t i = idx[k];
    if (mask_zero && i == 0) continue;
    const float v = to_float(s[i]);
    pos_term.add(-v);
    b_term.add(v);
  }
  *b = b_term.result();
  *pos = pos_term.result();
}

KX_HD float sparse_mlce_loss(float a, float b, float pos, float eps) {
  float unused;
  return sparse_mlce_neg(a, b, eps, &unused) + pos;
}

// Sparse form, d L / d s_i: the a term for every class (the caller gives 0 to index 0 under
// mask_zero), plus the b and positive terms once per occurrence of i among the positives; g is
// d L and dfb, dfa = 1 − dfb come from sparse_mlce_neg.
KX_HD float sparse_mlce_grad_all(float s, float a, float g, float dfa) { return g * dfa * lse_weight(s, a); }
KX_HD float sparse_mlce_grad_positive(float s, float b, float pos, float g, float dfb) {
  return g * (dfb * lse_weight(s, b) - lse_weight(-s, pos));
}

}  // namespace kx
