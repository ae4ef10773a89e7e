// The CPU backend's thread pool: one set of persistent workers, sized by KEXUE_NUM_THREADS
// (default: all cores), shared by every kernel and by every JS thread of the process. oneDNN's
// products run on it too (ops/matmul). set_num_threads waits for the running region and keeps the workers when the
// count is unchanged.
#pragma once
#include <cstdint>
#include <functional>

namespace kx::cpu {

int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items, on the
// pool's workers and the calling thread. Runs inline when one chunk suffices. Not reentrant: a
// parallel_for inside fn runs inline. Safe to call from several threads at once (JS worker threads
// each run kernels): the pool runs one region at a time and another caller waits for it; results do
// not depend on which threads ran a region's chunks.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// A grain that gives each task roughly `work_per_task` units when each item costs `cost_per_item`.
inline int64_t grain_for(int64_t cost_per_item, int64_t work_per_task = 32768) {
  const int64_t g = work_per_task / (cost_per_item > 0 ? cost_per_item : 1);
  return g > 0 ? g : 1;
}

}  // namespace kx::cpu
