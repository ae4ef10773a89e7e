// The runtimes as the N-API layer sees them: one facade over the CPU runtime (cpu/: the thread pool
// and the caching host allocator) and the CUDA runtime (cuda/: devices, streams, the caching device
// allocator; cuda/no_cuda.cpp in a build without nvcc), so that napi/module.cpp includes only this
// and the core's headers. Implemented in runtime/runtime.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kx/device.h"
#include "kx/tensor.h"

namespace kx::runtime {

// CPU: the pool's thread count, and the host allocator's cache.
int num_threads();
void set_num_threads(int n);
int64_t host_cached_bytes();  // free blocks kept for reuse, not in memory_stats().bytes
int64_t host_cache_limit();
int64_t release_host_cache();  // frees every cached block; returns the bytes released
void set_host_cache_limit(int64_t bytes);
// The library of the CPU's matrix products with its version, e.g. "oneDNN 2.6.3".
std::string cpu_blas();

// Copies of a tensor's bytes between host memory and a tensor of any device, and between tensors
// of equal size. From a CUDA tensor to the host: once the work queued before on its device is done.
void copy_from_host(const Tensor& dst, const void* src);
void copy_to_host(void* dst, const Tensor& src);
void copy(const Tensor& dst, const Tensor& src);

// CUDA: what the build has and the machine offers.
struct CudaBuild {
  bool compiled;             // the addon was built with CUDA
  std::string archs;         // e.g. "80,90"
  int runtime_version;       // cudart version compiled in, 0 without CUDA
  std::string blas_library;  // where matmul's cuBLASLt was found, or why it is not used
};
CudaBuild cuda_build();
std::vector<CudaDeviceInfo> cuda_devices();
std::string cuda_unavailable_reason();  // why there are no devices, when there are none
CudaMemoryStats cuda_memory_stats();
int64_t release_cuda_cache();  // cudaFree's every cached block; returns the bytes freed
void synchronize();            // waits for every device's queued work; raises a failed kernel's error

}  // namespace kx::runtime
