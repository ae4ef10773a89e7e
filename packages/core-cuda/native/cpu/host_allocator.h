// The caching host allocator behind CPU tensor storage. Freshly mapped pages cost a page fault on
// first touch (~3-5 ms per MB on the VMs this runs on, more than most kernels take to fill them),
// and glibc returns big blocks to the kernel on free, so every new activation paid that again.
// Blocks of kCacheMinBytes and more are kept after free in size-bucketed free lists (sizes rounded
// up to a quarter of their power of two, so a freed block serves any request of its bucket) and
// reused; smaller ones (less than a page) go straight to malloc. Blocks of a few pages are cached
// too: glibc handed a [32, 256] matmul's 32 KiB output fresh pages on every call (8 page faults, as
// long as the product itself at batch 1). A memory-pressure rule bounds the cache: it never
// holds more than its limit (KEXUE_HOST_CACHE_MB, default min(4 GiB, physical memory / 4)), it
// evicts other cached blocks first when a returned block would exceed it, and an allocation that
// fails empties the cache and retries once. Tensor storage reaches it through the allocator that
// host_allocator.cpp registers with the core (kx/allocator.h); this header is the cache's controls.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kx::cpu {

constexpr size_t kCacheMinBytes = size_t(4) << 10;

// Bytes held in the cache (free, ready for reuse), and its limit.
int64_t host_cached_bytes();
int64_t host_cache_limit();
// Frees every cached block; returns the bytes released.
int64_t host_cache_release();
// Sets the limit (bytes, >= 0; 0 disables caching) and trims the cache to it.
void host_cache_set_limit(int64_t bytes);

}  // namespace kx::cpu
