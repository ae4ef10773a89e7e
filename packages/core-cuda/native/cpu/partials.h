// Per-block partial results summed in a fixed order: how backward passes reduce a gradient that
// many tasks contribute to (norm dgamma/dbeta, bias_gelu's dbias, attention dbias) without atomics,
// with the same bits whatever the thread count. CPU-only (the thread pool sums them), shared by
// several families, so it lives with the pool.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/simd.h"

namespace kx::cpu {

// How many row blocks keep their own partials (dgamma/dbeta, dbias) in a backward pass: a function
// of the sizes only, so the reduction order is fixed whatever the thread count; capped so the
// partials (blocks × D floats per parameter) stay near 8 MB.
inline int64_t partial_blocks(int64_t rows, int64_t d) {
  int64_t cap = ((int64_t)1 << 21) / (d > 1 ? d : 1);
  if (cap < 1) cap = 1;
  int64_t b = rows < 64 ? rows : 64;
  if (b > cap) b = cap;
  return b > 1 ? b : 1;
}

// out[c] = Σ_blk partials[blk * stride + c] for c < d and blk < blocks, summed in block order and
// rounded once to out's dtype.
template <class T>
void sum_block_partials(const float* partials, int64_t blocks, int64_t stride, int64_t d, T* out) {
  parallel_for(d, grain_for(blocks), [&](int64_t c0, int64_t c1) {
    float sums[256];
    for (int64_t s0 = c0; s0 < c1; s0 += 256) {
      const int64_t len = c1 - s0 < 256 ? c1 - s0 : 256;
      std::fill(sums, sums + len, 0.0f);
      for (int64_t blk = 0; blk < blocks; ++blk)
        simd::binary(simd::BinaryOp::Add, sums, 1, partials + blk * stride + s0, 1, sums, len);
      narrow(sums, out + s0, len);
    }
  });
}

}  // namespace kx::cpu
