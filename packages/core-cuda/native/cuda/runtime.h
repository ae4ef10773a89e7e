// The CUDA runtime contract every .cu kernel file relies on (implemented in cuda/context.cu): the
// device's compute stream, error checks that turn CUDA failures into KexueErrors, and launch sizes.
// Kernels allocate through kx::empty(shape, dtype, device), which draws from the caching allocator
// on the same stream, so no kernel calls cudaMalloc and all work on a device is ordered. A scratch
// tensor may be dropped right after the launches that use it: its block is only handed to work
// queued later on the same stream (cuda/allocator.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/api.h"
#include "kx/tensor.h"

namespace kx::cuda {

// The one compute stream of a device; also makes the device current for the calling thread.
cudaStream_t stream(int device);
inline cudaStream_t stream(const Tensor& t) { return stream(t.device().index); }

// Throws the KexueError for a failed CUDA call: E_OOM for cudaErrorMemoryAllocation, E_DEVICE for a
// sticky (context-corrupting) error, E_INTERNAL otherwise; `what` names the operation.
void check(cudaError_t err, const char* what);
// After a kernel launch: picks up launch-configuration errors and sticky errors from earlier work
// (with KEXUE_CUDA_LAUNCH_BLOCKING=1 it also waits for the kernel, so a fault is reported by name).
void check_launch(const char* what);

// Grid size for n elements at `threads` per block, capped so the grid stays in range (kernels
// loop with a grid stride past the cap).
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 1 ? 1 : b > (int64_t(1) << 20) ? (int64_t(1) << 20) : b);
}

// Fills a device tensor with zeros on its stream (kx::zeros(shape, dtype, device) does it for a new one).
void zero(const Tensor& t);
// Fills `bytes` of device memory with zeros on the device's stream (also the CUDA allocator's zero).
void zero_bytes(void* dst, size_t bytes, int device);

}  // namespace kx::cuda
