#include "runtime/runtime.h"

#include <cstring>

#include "cpu/host_allocator.h"
#include "cpu/onednn.h"
#include "cpu/thread_pool.h"
#include "cuda/api.h"

namespace kx::runtime {

int num_threads() { return cpu::num_threads(); }
void set_num_threads(int n) { cpu::set_num_threads(n); }
int64_t host_cached_bytes() { return cpu::host_cached_bytes(); }
int64_t host_cache_limit() { return cpu::host_cache_limit(); }
int64_t release_host_cache() { return cpu::host_cache_release(); }
void set_host_cache_limit(int64_t bytes) { cpu::host_cache_set_limit(bytes); }
std::string cpu_blas() { return cpu::onednn::version(); }

void copy_from_host(const Tensor& dst, const void* src) {
  if (dst.device().type == DeviceType::CPU) {
    if (dst.nbytes()) std::memcpy(dst.raw(), src, dst.nbytes());
  } else {
    cuda::copy_to_device(dst.raw(), src, dst.nbytes(), dst.device().index);
  }
}

void copy_to_host(void* dst, const Tensor& src) {
  if (src.device().type == DeviceType::CPU) {
    if (src.nbytes()) std::memcpy(dst, src.raw(), src.nbytes());
  } else {
    cuda::copy_to_host(dst, src.raw(), src.nbytes(), src.device().index);
  }
}

void copy(const Tensor& dst, const Tensor& src) {
  if (dst.device().type == DeviceType::CPU) {
    copy_to_host(dst.raw(), src);
  } else if (src.device().type == DeviceType::CPU) {
    copy_from_host(dst, src.raw());
  } else {
    cuda::copy_device(dst.raw(), dst.device().index, src.raw(), src.device().index, src.nbytes());
  }
}

CudaBuild cuda_build() {
  return {cuda::compiled(), cuda::compiled_archs(), cuda::runtime_version(), cuda::blas_library()};
}
std::vector<CudaDeviceInfo> cuda_devices() { return cuda::devices(); }
std::string cuda_unavailable_reason() { return cuda::unavailable_reason(); }
CudaMemoryStats cuda_memory_stats() { return cuda::memory_stats(); }
int64_t release_cuda_cache() { return cuda::release_cache(); }
void synchronize() { cuda::synchronize(); }

}  // namespace kx::runtime
