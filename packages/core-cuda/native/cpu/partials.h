// Per-block partial results summed in a fixed order: how backward passes reduce a gradient that
// many tasks contribute to (norm dgamma/dbeta, attention dbias) without atomics, with the same bits
// whatever the thread count.
#pragma once
#include <cstdint>

#include "cpu/thread_pool.h"
#include "kx/convert.h"

namespace kx::cpu {

// out[c] = Σ_blk partials[blk * stride + c] for c < d and blk < blocks, summed in block order and
// rounded once to out's dtype.
template <class T>
void sum_block_partials(const float* partials, int64_t blocks, int64_t stride, int64_t d, T* out) {
  parallel_for(d, grain_for(blocks), [&](int64_t c0, int64_t c1) {
    float sums[256];
    for (int64_t s0 = c0; s0 < c1; s0 += 256) {
      const int64_t len = c1 - s0 < 256 ? c1 - s0 : 256;
      for (int64_t c = 0; c < len; ++c) {
        float s = 0.0f;
        for (int64_t blk = 0; blk < blocks; ++blk) s += partials[blk * stride + s0 + c];
        sums[c] = s;
      }
      narrow(sums, out + s0, len);
    }
  });
}

}  // namespace kx::cpu
