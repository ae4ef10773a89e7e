// The C++ face of the CUDA runtime for code outside it (the runtime facade, runtime/runtime.cpp)
// and for kernels (through cuda/runtime.h, which adds the stream and error checks). Plain C++, no
// CUDA headers, so that the g++ side compiles it; implemented by cuda/context.cu and
// cuda/allocator.cu, or by cuda/no_cuda.cpp in a build without nvcc. Storage is allocated through
// the allocator that cuda/allocator.cu registers with the core (kx/allocator.h), not from here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kx/device.h"
#include "kx/dtype.h"

namespace kx::cuda {

bool compiled();                   // the addon was built with CUDA
std::string compiled_archs();      // e.g. "80,90"
int runtime_version();             // cudart version compiled in, 0 without CUDA
std::string blas_library();        // where matmul's cuBLASLt was found, or why it is not used
int device_count();                // 0 on a machine without GPU or driver
std::string unavailable_reason();  // why device_count() is 0, when it is
std::vector<CudaDeviceInfo> devices();

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
// Waits for every device's queued work; raises the error of any kernel that failed.
void synchronize();

// NCCL, opened at run time (cuda/nccl.cu), for kx::dist's collectives on CUDA tensors: one
// communicator per process, on one device, joined once with an id that rank 0 makes and MPI carries.
// The collectives are queued on the device's compute stream, after the work that made the tensors.
// A missing libnccl.so.2 is E_NO_MPI naming what to install.
struct NcclId {
  char bytes[128];  // ncclUniqueId
};
struct NcclBuffer {
  void* data;
  size_t count;
  DType dtype;
};
NcclId nccl_unique_id();
void nccl_init(const NcclId& id, int rank, int size, int device);
// In place, as one NCCL group; mean divides by the number of ranks (ncclAvg).
void nccl_all_reduce(const std::vector<NcclBuffer>& buffers, bool mean, int device);
void nccl_broadcast(const std::vector<NcclBuffer>& buffers, int root, int device);

}  // namespace kx::cuda
