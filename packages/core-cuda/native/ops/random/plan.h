// dropout's validated attributes (normal's key is kx/philox_key.h's), shared by the CPU
// (random.cpp) and CUDA (random.cu) kernels so both reject the same calls and draw the same mask
// from the same float32 p and scale.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/philox_key.h"
#include "kx/registry.h"

namespace kx {

struct DropoutParams {
  float p;        // drop probability, compared with the uniform draw
  float scale;    // 1 / (1 - p) for the kept elements
  uint64_t seed;  // the Philox key
  uint64_t offset;  // random element of the tensor's first element
};

inline DropoutParams dropout_params(const Attrs& attrs) {
  const double p = attrs.num("p", 0.0);
  KX_CHECK(std::isfinite(p) && p >= 0 && p < 1, Arg, "dropout: p must be in [0, 1), got ", p);
  const uint64_t seed = u53_attr(attrs, "dropout", "seed");
  const uint64_t offset = u53_attr(attrs, "dropout", "offset");
  return {(float)p, (float)(1.0 / (1.0 - p)), seed, offset};
}

}  // namespace kx
