// The size classes of the caching allocators (host: cpu/host_allocator.cpp, CUDA:
// cuda/allocator.cu): a request is rounded up to a multiple of a quarter of the largest power of two
// <= it (at most 25% more), so a freed block serves any later request of its class.
#pragma once
#include <cstddef>

namespace kx {

// n rounded up to its size class; the step is never below min_step (the allocator's alignment).
inline size_t size_class(size_t n, size_t min_step) {
  size_t p = 1;
  while ((p << 1) <= n) p <<= 1;
  const size_t step = p / 4 > min_step ? p / 4 : min_step;
  return (n + step - 1) / step * step;
}

}  // namespace kx
