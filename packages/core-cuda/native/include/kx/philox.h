// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. A (key, counter) pair maps to four independent 32-bit words with no
// state, so any element's random number can be computed on its own by any thread, on CPU or GPU,
// and a run with a seed is repeatable whatever the threading.
//
// kexue's convention (shared by every op that draws random numbers): the 64-bit seed is the key;
// random element e (a 64-bit index: the op's offset plus the element's index) uses word e % 4 of
// the block at counter {lo32(e / 4), hi32(e / 4), 0, 0}.
#pragma once
#include <cstdint>

#include "kx/math.h"

namespace kx {

struct Philox4 {
  uint32_t v[4];
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1

KX_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

// The ten rounds of Philox-4x32 on counter c under key (k0, k1).
KX_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kPhiloxM0, c.v[0], &hi0, &lo0);
    philox_mulhilo(kPhiloxM1, c.v[2], &hi1, &lo1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// Block j of the stream `stream` (counter word c3) of element e: counter {lo32(e), hi32(e), j,
// stream} under the 64-bit seed. Stream 0, j 0 is the convention below (philox_block); draws that
// need several numbers an element take a stream of their own (normals, Wood's vMF sampler).
KX_HD Philox4 philox_stream_block(uint64_t seed, uint64_t e, uint32_t j, uint32_t stream) {
  return philox4x32_10(Philox4{{(uint32_t)e, (uint32_t)(e >> 32), j, stream}}, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// The four words of block `block` (random elements 4*block .. 4*block+3) for a 64-bit seed.
KX_HD Philox4 philox_block(uint64_t seed, uint64_t block) { return philox_stream_block(seed, block, 0u, 0u); }

// A uniform float in [0, 1) from the top 24 bits of a word: every value is exact in float32.
KX_HD float philox_uniform(uint32_t word) { return (float)(word >> 8) * 5.9604644775390625e-08f; }

// The uniform of random element e: word e % 4 of block e / 4.
KX_HD float philox_uniform_at(uint64_t seed, uint64_t e) { return philox_uniform(philox_block(seed, e >> 2).v[e & 3]); }

// A uniform float in (0, 1): (the top 24 bits + 1/2) / 2^24, never 0 (its logarithm is finite).
KX_HD float philox_uniform_open(uint32_t word) { return ((float)(word >> 8) + 0.5f) * 5.9604644775390625e-08f; }

// Standard normals ('NRML' in counter word c3, so they never share a block with the words of the
// convention above): normal element e is the Box–Muller cosine of the first two words of block
// {lo32(e), hi32(e), 0, kPhiloxNormalStream}, each taken as (top 24 bits + 1/2) / 2^24 in (0, 1).
constexpr uint32_t kPhiloxNormalStream = 0x4E524D4Cu;

KX_HD float philox_normal(uint64_t seed, uint64_t e) {
  const Philox4 r = philox_stream_block(seed, e, 0u, kPhiloxNormalStream);
  const float u1 = philox_uniform_open(r.v[0]);
  const float u2 = philox_uniform_open(r.v[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

// Inverted dropout of one element: kept (u >= p) elements are scaled by 1 / (1 - p), passed in
// precomputed as `scale`; dropped ones become 0.
KX_HD float dropout_element(float x, float u, float p, float scale) { return u >= p ? x * scale : 0.0f; }

}  // namespace kx
