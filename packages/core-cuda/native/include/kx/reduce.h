// The math of reducing one row, shared by CPU and CUDA: float32 accumulation, sums kept accurate on
// long rows by a pairwise cascade over fixed blocks (error ~ (B + log2(n/B))·eps instead of n·eps),
// and a max that propagates NaN like PyTorch.
#pragma once
#include <cstdint>

#include "kx/math.h"

namespace kx {

// Elements summed directly (with kReduceLanes independent accumulators) before the cascade.
constexpr int64_t kSumBlock = 256;
constexpr int kReduceLanes = 16;

// max that propagates NaN: once a NaN is seen the result stays NaN (PyTorch's max/amax).
// (bitwise | rather than ||, so the select has no branch and vectorises)
KX_HD float max_nan(float a, float v) { return ((v > a) | (v != v)) ? v : a; }

// Folds kReduceLanes accumulators into acc[0] in a fixed order (halving: the same tree on every
// backend and for every thread count) and returns it.
KX_HD float combine_lanes(float* acc) {
  for (int w = kReduceLanes / 2; w > 0; w /= 2)
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  return acc[0];
}

// Sum of a short run (n <= kSumBlock is what it is meant for) with independent lanes, so that
// -O3 turns it into vector adds without reassociating a single accumulator. Each lane sees n/16
// terms, which also keeps a longer run accurate enough for a norm's statistics.
KX_HD float block_sum(const float* x, int64_t n) {
  float acc[kReduceLanes] = {};
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int k = 0; k < kReduceLanes; ++k) acc[k] += x[i + k];
  for (int k = 0; i < n; ++i, ++k) acc[k] += x[i];
  return combine_lanes(acc);
}

// Σ a_i·b_i over lanes as block_sum.
KX_HD float block_dot(const float* a, const float* b, int64_t n) {
  float acc[kReduceLanes] = {};
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int k = 0; k < kReduceLanes; ++k) acc[k] += a[i + k] * b[i + k];
  for (int k = 0; i < n; ++i, ++k) acc[k] += a[i] * b[i];
  return combine_lanes(acc);
}

// Pairwise combination of block sums without recursion: partial sums live on a stack like the
// digits of a binary counter, and two sums of equal weight merge as soon as both exist. Feeding it
// the block sums of a row in order gives the same tree as a recursive pairwise sum.
struct PairwiseSum {
  float stack[64];
  int depth = 0;
  uint64_t count = 0;
  KX_HD void add(float s) {
    ++count;
    // each trailing zero bit of the new count is one merge of two equal-weight partial sums
    for (uint64_t c = count; (c & 1u) == 0 && depth > 0; c >>= 1) s += stack[--depth];
    stack[depth++] = s;
  }
  KX_HD float result() const {
    float s = 0.0f;
    for (int d = depth - 1; d >= 0; --d) s += stack[d];
    return s;
  }
};

// Sum of a contiguous float32 row, pairwise over kSumBlock blocks.
KX_HD float row_sum(const float* x, int64_t n) {
  if (n <= kSumBlock) return block_sum(x, n);
  PairwiseSum p;
  for (int64_t i = 0; i < n; i += kSumBlock) p.add(block_sum(x + i, n - i < kSumBlock ? n - i : kSumBlock));
  return p.result();
}

// Max of a contiguous row (-inf when empty), NaN-propagating. The max and a "saw a NaN" flag are two
// independent reductions, so the compiler emits vector max and compare instructions: a select
// that propagates NaN in one expression stays scalar and branchy under gcc. The order of a max
// does not change its value, so this is the same on every backend.
KX_HD float row_max(const float* x, int64_t n) {
  float m = -INFINITY;
  int nan = 0;
  KX_SIMD_REDUCE(reduction(max : m) reduction(| : nan))
  for (int64_t i = 0; i < n; ++i) {
    m = x[i] > m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  return nan ? NAN : m;
}

}  // namespace kx
