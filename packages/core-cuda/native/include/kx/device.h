// Devices: the CPU, and CUDA devices when the build has CUDA and the machine has a GPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kx {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };

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

// The C++ face of the CUDA runtime (cuda/context.cu, cuda/allocator.cu; cuda/no_cuda.cpp in a build
// without nvcc). Kernels use cuda/runtime.h, which adds the stream and error checks.
namespace cuda {
bool compiled();                        // the addon was built with CUDA
std::string compiled_archs();           // e.g. "80,90"
int runtime_version();                  // cudart version compiled in, 0 without CUDA
std::string blas_library();             // where matmul's cuBLASLt was found, or why it is not used
int device_count();                     // 0 on a machine without GPU or driver
std::string unavailable_reason();       // why device_count() is 0, when it is
std::vector<CudaDeviceInfo> devices();

// A block of at least `bytes` from the device's cache (or cudaMalloc); *capacity receives its real
// size, to pass back to free. E_NO_CUDA / E_DEVICE for a bad device, E_OOM with sizes when the
// device is full even after the cache was released.
void* alloc(size_t bytes, int device, size_t* capacity);
// Returns a block to the cache at once: work already queued on the device's stream may still use
// it, and only later work on that same stream can get it again, so no synchronisation is needed.
void free(void* ptr, size_t capacity, int device);
CudaMemoryStats memory_stats();
// Waits for the device's queued work, then cudaFree's every cached block; returns the bytes freed.
int64_t release_cache();

// Copies on the device's stream. copy_to_device returns once `src` may be reused, without waiting
// for the device (the bytes are staged in pinned memory first); copy_to_host returns once `dst`
// holds the data.
void copy_to_device(void* dst, const void* src, size_t bytes, int device);
void copy_to_host(void* dst, const void* src, size_t bytes, int device);
// Device to device: within one device on its stream; across devices after both streams are idle.
void copy_device(void* dst, int dst_device, const void* src, int src_device, size_t bytes);
// Fills `bytes` of device memory with zeros on the device's stream.
void zero_bytes(void* dst, size_t bytes, int device);
// Waits for every device's queued work; raises the error of any kernel that failed.
void synchronize();
}  // namespace cuda

}  // namespace kx
