// How the CPU reduces a row (float32 accumulation, sums kept accurate on long rows by a pairwise
// cascade over fixed blocks: error ~ (B + log2(n/B))·eps instead of n·eps), and the max that
// propagates NaN like PyTorch, which the CUDA kernels share.
//
// The CPU's row reductions are vector runs (kx/simd.h: block_sum, block_dot, row_sum, row_max and
// the softmax and norm rows), in this order, fixed so that a row's sum depends only on its values:
// element i of a block adds into accumulator i mod kReduceLanes (a partial last group into the
// first accumulators), the accumulators fold by halving (accumulator k adds accumulator k + w for
// w = kReduceLanes/2, then half that, down to one: the same tree on every target and thread
// count), and a row longer than kSumBlock combines its blocks' sums by PairwiseSum. Every target
// sums in that order (the accumulators are kReduceLanes / lanes vectors), so the targets differ only
// where one fuses a multiply-add.
#pragma once
#include <cstdint>

#include "kx/math.h"

namespace kx {

// Elements summed directly (with kReduceLanes independent accumulators) before the cascade. 32
// accumulators are two AVX-512 vectors (four AVX2 ones), so the adds of one row do not wait on each
// other's latency.
constexpr int64_t kSumBlock = 256;
constexpr int kReduceLanes = 32;

// max that propagates NaN: once a NaN is seen the result stays NaN (PyTorch's max/amax).
// (bitwise | rather than ||, so the select has no branch and vectorises)
KX_HD float max_nan(float a, float v) { return ((v > a) | (v != v)) ? v : a; }

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

}  // namespace kx
