// Devices: the CPU, and CUDA devices when the build has CUDA and the machine has a GPU; what the
// CUDA runtime reports of them (its functions: cuda/api.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kx {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const;
};

struct CudaDeviceInfo {
  int index;
  std::string name;
  int major, minor;
  size_t total_memory;
  int multiprocessors;
};

// The caching device allocator's counters, summed over devices (bytes are block sizes, which are
// requests rounded up to a size class).
struct CudaMemoryStats {
  int64_t allocated = 0;     // bytes in blocks that storages hold now
  int64_t cached = 0;        // bytes in freed blocks kept for reuse
  int64_t peak = 0;          // the most `allocated` has been
  int64_t malloc_calls = 0;  // cudaMalloc calls made (none in a training loop's steady state)
  int64_t cache_hits = 0;    // allocations served from the cache
};

}  // namespace kx
