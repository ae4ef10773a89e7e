// The Philox key of a draw as ops take it (seed, offset: JS numbers, so integers in [0, 2^53)),
// validated once for every random op (dropout, normal, the vMF samplers), CPU and CUDA alike.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/registry.h"

namespace kx {

constexpr double kMaxExactInt = 9007199254740991.0;  // 2^53 - 1: the integers a JS number holds

// Attribute `name` (default 0) as an integer in [0, 2^53); E_ARG naming op otherwise.
inline uint64_t u53_attr(const Attrs& attrs, const char* op, const char* name) {
  const double v = attrs.num(name, 0.0);
  KX_CHECK(std::isfinite(v) && v >= 0 && v <= kMaxExactInt && v == std::floor(v), Arg, op, ": ", name,
           " must be an integer in [0, 2^53), got ", v);
  return (uint64_t)v;
}

// The seed and the random element of a draw's first value.
struct PhiloxKey {
  uint64_t seed;
  uint64_t offset;
};

// The key of a draw of `count` values, whose last random element must stay below 2^53.
inline PhiloxKey philox_key(const Attrs& attrs, const char* op, int64_t count) {
  const PhiloxKey k{u53_attr(attrs, op, "seed"), u53_attr(attrs, op, "offset")};
  KX_CHECK(k.offset + (uint64_t)count <= (uint64_t)kMaxExactInt, Arg, op, ": offset + count must be below 2^53");
  return k;
}

}  // namespace kx
