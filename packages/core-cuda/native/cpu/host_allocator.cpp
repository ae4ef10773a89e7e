#include "cpu/host_allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kx/allocator.h"
#include "kx/error.h"
#include "kx/size_class.h"

namespace kx::cpu {
namespace {

constexpr size_t kAlign = 64;  // a cache line, and enough for AVX-512 loads

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // bucket size -> blocks
  int64_t cached = 0;
  int64_t limit = -1;  // -1: not read from the environment yet
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: storages may be freed during exit
  return *c;
}

int64_t default_limit() {
  if (const char* env = std::getenv("KEXUE_HOST_CACHE_MB")) {
    char* end = nullptr;
    const long long mb = std::strtoll(env, &end, 10);
    if (end != env && mb >= 0) return (int64_t)mb << 20;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const int64_t phys = pages > 0 && page > 0 ? (int64_t)pages * page : (int64_t)8 << 30;
  const int64_t cap = (int64_t)4 << 30;
  return phys / 4 < cap ? phys / 4 : cap;
}

int64_t limit_locked(Cache& c) {
  if (c.limit < 0) c.limit = default_limit();
  return c.limit;
}

// Frees cached blocks until cached + extra <= limit.
void trim_locked(Cache& c, int64_t extra) {
  const int64_t lim = limit_locked(c);
  for (auto it = c.free.begin(); c.cached + extra > lim && it != c.free.end();) {
    auto& v = it->second;
    while (!v.empty() && c.cached + extra > lim) {
      std::free(v.back());
      v.pop_back();
      c.cached -= (int64_t)it->first;
    }
    it = v.empty() ? c.free.erase(it) : std::next(it);
  }
}

// Blocks from 2 MiB up start on a huge-page boundary and are marked for transparent huge pages
// (Linux's default mode is "madvise": only marked memory gets them). A first touch then faults once
// per 2 MiB instead of once per 4 KiB: on a VM a fault costs tens of microseconds, and the first
// step of a training run touches a few GB (BERT-small: 300k faults, 16 s, before this).
constexpr size_t kHugePage = size_t(2) << 20;

void* system_alloc(size_t bytes) {
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (bytes < kHugePage) return std::aligned_alloc(kAlign, bytes);
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, bytes) != 0) return nullptr;
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only: where THP is off this changes nothing
  return p;
}

// A block of at least `bytes` bytes, 64-byte aligned; *capacity receives its real size (pass it
// back to host_free). Returns nullptr when the system has no memory even after emptying the cache.
void* host_alloc(size_t bytes, size_t* capacity) {
  if (bytes == 0) bytes = 1;
  if (bytes < kCacheMinBytes) {
    *capacity = (bytes + kAlign - 1) / kAlign * kAlign;
    return system_alloc(bytes);
  }
  const size_t b = size_class(bytes, kAlign);
  *capacity = b;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free.find(b);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= (int64_t)b;
      return p;
    }
  }
  if (void* p = system_alloc(b)) return p;
  host_cache_release();  // memory pressure: give the cache back to the system and retry once
  return system_alloc(b);
}

void host_free(void* p, size_t capacity) {
  if (!p) return;
  if (capacity < kCacheMinBytes) {
    std::free(p);
    return;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if ((int64_t)capacity > limit_locked(c)) {
    std::free(p);
    return;
  }
  trim_locked(c, (int64_t)capacity);
  c.free[capacity].push_back(p);
  c.cached += (int64_t)capacity;
}

// The CPU device type's allocator (kx/allocator.h); `index` is always 0.
void* alloc(size_t bytes, int, size_t* capacity) {
  void* p = host_alloc(bytes, capacity);
  if (!p) fail(Code::OOM, "out of host memory allocating ", bytes, " bytes");
  return p;
}
void free(void* p, size_t capacity, int) { host_free(p, capacity); }
void zero(void* p, size_t bytes, int) { std::memset(p, 0, bytes); }

}  // namespace

KX_REGISTER_ALLOCATOR(CPU, alloc, free, zero);

int64_t host_cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.cached;
}

int64_t host_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return limit_locked(c);
}

int64_t host_cache_release() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  const int64_t released = c.cached;
  for (auto& [size, v] : c.free)
    for (void* p : v) std::free(p);
  c.free.clear();
  c.cached = 0;
  return released;
}

void host_cache_set_limit(int64_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes < 0 ? 0 : bytes;
  trim_locked(c, 0);
}

}  // namespace kx::cpu
