// The caching device allocator behind CUDA tensor storage. cudaMalloc and cudaFree cost tens of
// microseconds to milliseconds and cudaFree synchronises the whole device, so a training step that
// allocated its activations afresh would stall on them. Freed blocks are kept instead, per device,
// in free lists keyed by size class (requests rounded up to a quarter of their power of two, at
// least 512 bytes, so a freed block serves any request of its class), and handed out again at once:
// all work on a device runs on its one stream, so work queued later can only touch a reused block
// after the work queued before has finished with it. After the first step of a loop every request
// finds its class in the cache and cudaMalloc is no longer called. When cudaMalloc fails, the
// device's cache is released (after its stream drains) and the call retried once. The allocator is
// registered with the core as the CUDA device type's (kx/allocator.h).
#include <cuda_runtime.h>

#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/runtime.h"
#include "kx/allocator.h"
#include "kx/device.h"
#include "kx/error.h"
#include "kx/size_class.h"

namespace kx::cuda {

namespace {

constexpr size_t kMinBlock = 512;  // also cudaMalloc's alignment, more than 16-byte vector loads need


struct DevicePool {
  std::unordered_map<size_t, std::vector<void*>> free;  // size class -> cached blocks
  CudaMemoryStats stats;
};

struct Pools {
  std::mutex mu;
  std::vector<DevicePool> by_device;
};

Pools& pools() {
  static Pools* p = new Pools();  // never destroyed: storages may be freed during exit
  return *p;
}

DevicePool& pool_locked(Pools& p, int device) {
  if (p.by_device.size() <= (size_t)device) p.by_device.resize(device + 1);
  return p.by_device[device];
}

// cudaFree's the device's cached blocks once the work queued on its stream (which may still use
// them) has finished. The caller holds the lock.
int64_t release_locked(DevicePool& pool, int device) {
  if (pool.stats.cached == 0) return 0;
  check(cudaStreamSynchronize(stream(device)), "releasing the CUDA cache");
  const int64_t released = pool.stats.cached;
  for (auto& [size, blocks] : pool.free)
    for (void* b : blocks) check(cudaFree(b), "releasing the CUDA cache");
  pool.free.clear();
  pool.stats.cached = 0;
  return released;
}

// A block of at least `bytes` from the device's cache (or cudaMalloc); *capacity receives its real
// size, to pass back to free. E_NO_CUDA / E_DEVICE for a bad device, E_OOM with sizes when the
// device is full even after the cache was released.
void* alloc(size_t bytes, int device, size_t* capacity) {
  stream(device);  // checks the device (and earlier sticky errors) and makes it current
  *capacity = 0;
  if (bytes == 0) return nullptr;
  const size_t size = size_class(bytes, kMinBlock);
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mu);
  DevicePool& pool = pool_locked(p, device);
  void* ptr = nullptr;
  auto it = pool.free.find(size);
  if (it != pool.free.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    pool.stats.cached -= (int64_t)size;
    pool.stats.cache_hits += 1;
  } else {
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_locked(pool, device);
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();  // sizes are only for the message
      fail(Code::OOM, "CUDA out of memory allocating ", bytes, " bytes on cuda:", device, " (", free_b, " free of ",
           total_b, "; kexue holds ", pool.stats.allocated, " allocated + ", pool.stats.cached, " cached)");
    }
    check(err, "cudaMalloc");
    pool.stats.malloc_calls += 1;
  }
  pool.stats.allocated += (int64_t)size;
  if (pool.stats.allocated > pool.stats.peak) pool.stats.peak = pool.stats.allocated;
  *capacity = size;
  return ptr;
}

// Returns a block to the cache at once: work already queued on the device's stream may still use
// it, and only later work on that same stream can get it again, so no synchronisation is needed.
void free(void* ptr, size_t capacity, int device) {
  if (!ptr) return;
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mu);
  DevicePool& pool = pool_locked(p, device);
  pool.free[capacity].push_back(ptr);
  pool.stats.allocated -= (int64_t)capacity;
  pool.stats.cached += (int64_t)capacity;
}

}  // namespace

KX_REGISTER_ALLOCATOR(CUDA, alloc, free, zero_bytes);

CudaMemoryStats memory_stats() {
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mu);
  CudaMemoryStats sum;
  for (const DevicePool& pool : p.by_device) {
    sum.allocated += pool.stats.allocated;
    sum.cached += pool.stats.cached;
    sum.peak += pool.stats.peak;
    sum.malloc_calls += pool.stats.malloc_calls;
    sum.cache_hits += pool.stats.cache_hits;
  }
  return sum;
}

int64_t release_cache() {
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mu);
  int64_t released = 0;
  for (size_t d = 0; d < p.by_device.size(); ++d) released += release_locked(p.by_device[d], (int)d);
  return released;
}

}  // namespace kx::cuda
