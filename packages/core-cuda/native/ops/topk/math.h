// topk's order, written once for the CPU (topk.cpp) and CUDA (topk.cu) kernels, so both pick the
// same entries in the same order. An entry's rank packs its key and its index into one integer:
// a larger rank comes first, and no two entries of a row share one, so any selection algorithm
// (heap, nth_element, per-thread buffers, radix sort) gives the same result.
//
// The key orders floats as PyTorch's topk does: NaN above +inf (first with largest, last with
// smallest), -0 equal to +0. It is computed on the bits, not with float arithmetic, so that no
// flush of subnormals or fast-math rewrite on either backend can change it.
#pragma once
#include <cstdint>

#include "kx/dtype.h"

namespace kx {

// An unsigned key whose order is the order topk ranks x by: larger first.
KX_HD uint32_t topk_key(float x, bool largest) {
  const uint32_t u = float_bits(x);
  const uint32_t mag = u & 0x7fffffffu;
  // NaN above +inf's 0xff800000; ±0 as one value; else the sign-magnitude bits made monotonic.
  const uint32_t key = mag > 0x7f800000u ? 0xffffffffu : mag == 0 ? 0x80000000u : (u >> 31) ? ~u : u | 0x80000000u;
  return largest ? key : ~key;
}

// The rank of the entry at `index` (< 2^31) with key `key`: the key first, then the lower index.
// Never 0 (the low word ~index is at least 2^31), so 0 can stand for "no entry".
KX_HD uint64_t topk_rank(uint32_t key, int64_t index) { return (uint64_t)key << 32 | (uint32_t)~(uint32_t)index; }

KX_HD int32_t topk_index(uint64_t rank) { return (int32_t)~(uint32_t)rank; }

}  // namespace kx
