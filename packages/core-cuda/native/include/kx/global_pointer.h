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
  KX_HD float result() const { return (m == -INFINITY || m != m || m == INFINITY) ? m : m + logf(sum); }
};

// e^{v − lse}, 0 for v = −∞ (the weight of one element in a logsumexp's gradient).
KX_HD float lse_weight(float v, float lse) { return v == -INFINITY ? 0.0f : exp_fast(v - lse); }

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

}  // namespace kx
