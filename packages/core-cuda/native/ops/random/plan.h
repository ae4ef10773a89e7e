// dropout's validated attributes, shared by the CPU (random.cpp) and CUDA (random.cu) kernels so
// both reject the same calls and draw the same mask from the same float32 p and scale.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/registry.h"

namespace kx {

struct DropoutParams {
  float p;        // drop probability, compared with the uniform draw
  float scale;    // 1 / (1 - p) for the kept elements
  uint64_t seed;  // the Philox key
  uint64_t offset;  // random element of the tensor's first element
};

inline uint64_t dropout_u64_attr(const Attrs& attrs, const char* name) {
  constexpr double kMaxExactInt = 9007199254740991.0;  // 2^53 - 1: the integers a JS number holds
  const double v = attrs.num(name, 0.0);
  KX_CHECK(std::isfinite(v) && v >= 0 && v <= kMaxExactInt && v == std::floor(v), Arg, "dropout: ", name,
           " must be an integer in [0, 2^53), got ", v);
  return (uint64_t)v;
}

inline DropoutParams dropout_params(const Attrs& attrs) {
  const double p = attrs.num("p", 0.0);
  KX_CHECK(std::isfinite(p) && p >= 0 && p < 1, Arg, "dropout: p must be in [0, 1), got ", p);
  const uint64_t seed = dropout_u64_attr(attrs, "seed");
  const uint64_t offset = dropout_u64_attr(attrs, "offset");
  return {(float)p, (float)(1.0 / (1.0 - p)), seed, offset};
}

// normal's key: the seed and the random element of the output's first element.
struct NormalParams {
  uint64_t seed;
  uint64_t offset;
};

inline NormalParams normal_params(const Attrs& attrs, int64_t count) {
  constexpr double kMaxExactInt = 9007199254740991.0;
  uint64_t v[2];
  const char* names[2] = {"seed", "offset"};
  for (int i = 0; i < 2; ++i) {
    const double x = attrs.num(names[i], 0.0);
    KX_CHECK(std::isfinite(x) && x >= 0 && x <= kMaxExactInt && x == std::floor(x), Arg, "normal: ", names[i],
             " must be an integer in [0, 2^53), got ", x);
    v[i] = (uint64_t)x;
  }
  KX_CHECK((double)v[1] + (double)count <= kMaxExactInt, Arg, "normal: offset + count must be below 2^53");
  return {v[0], v[1]};
}

}  // namespace kx
