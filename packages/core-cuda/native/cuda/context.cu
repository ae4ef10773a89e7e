// CUDA device discovery and raw memory. Built whenever nvcc is found; on a machine without a GPU or
// driver cudaGetDeviceCount fails (error 35 and friends) and the count is taken as 0, so the addon
// still loads and reports CUDA as unavailable.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "kx/device.h"
#include "kx/error.h"

namespace kx::cuda {

namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    const cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      r.count = 0;
      r.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      cudaGetLastError();  // clear the (non-sticky) error
    } else if (r.count == 0) {
      r.reason = "no CUDA device found";
    }
    return r;
  }();
  return p;
}

void check_device(int device) {
  KX_CHECK(probe().count > 0, NoCuda, "CUDA is not available: ", probe().reason);
  KX_CHECK(device >= 0 && device < probe().count, Device, "no CUDA device ", device, " (", probe().count,
           " present)");
}

[[noreturn]] void fail_cuda(cudaError_t err, const char* what) {
  fail(err == cudaErrorMemoryAllocation ? Code::OOM : Code::Internal, what, ": ", cudaGetErrorName(err), ": ",
       cudaGetErrorString(err));
}

}  // namespace

bool compiled() { return true; }
std::string compiled_archs() { return KX_CUDA_ARCHS; }
int runtime_version() { return CUDART_VERSION; }
int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }

std::vector<CudaDeviceInfo> devices() {
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < device_count(); ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    out.push_back({i, prop.name, prop.major, prop.minor, prop.totalGlobalMem, prop.multiProcessorCount});
  }
  return out;
}

void* alloc(size_t bytes, int device) {
  check_device(device);
  cudaSetDevice(device);
  void* ptr = nullptr;
  const cudaError_t err = cudaMalloc(&ptr, bytes ? bytes : 1);
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail(Code::OOM, "CUDA out of memory allocating ", bytes, " bytes on cuda:", device, " (", free_b,
         " free of ", total_b, ")");
  }
  return ptr;
}

void free(void* ptr, int device) {
  cudaSetDevice(device);
  cudaFree(ptr);
}

void copy_to_device(void* dst, const void* src, size_t bytes, int device) {
  check_device(device);
  cudaSetDevice(device);
  const cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
  if (err != cudaSuccess) fail_cuda(err, "copy to device");
}

void copy_to_host(void* dst, const void* src, size_t bytes, int device) {
  check_device(device);
  cudaSetDevice(device);
  const cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
  if (err != cudaSuccess) fail_cuda(err, "copy to host");
}

}  // namespace kx::cuda
