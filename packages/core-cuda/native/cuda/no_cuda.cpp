// The CUDA entry points of a build made without nvcc: no devices, and a typed error for any use.
#include "cuda/api.h"
#include "kx/allocator.h"
#include "kx/error.h"

namespace kx::cuda {

namespace {
[[noreturn]] void unavailable() { fail(Code::NoCuda, "CUDA is not available: ", unavailable_reason()); }
void* alloc(size_t, int, size_t*) { unavailable(); }
void free(void*, size_t, int) {}
void zero_bytes(void*, size_t, int) { unavailable(); }
}  // namespace

KX_REGISTER_ALLOCATOR(CUDA, alloc, free, zero_bytes);

bool compiled() { return false; }
std::string compiled_archs() { return ""; }
int runtime_version() { return 0; }
std::string blas_library() { return "none (built without CUDA)"; }
int device_count() { return 0; }
std::string unavailable_reason() { return "this build of kexue was compiled without CUDA (nvcc not found)"; }
std::vector<CudaDeviceInfo> devices() { return {}; }
CudaMemoryStats memory_stats() { return {}; }
int64_t release_cache() { return 0; }
void copy_to_device(void*, const void*, size_t, int) { unavailable(); }
void copy_to_host(void*, const void*, size_t, int) { unavailable(); }
void copy_device(void*, int, const void*, int, size_t) { unavailable(); }
void synchronize() {}
NcclId nccl_unique_id() { unavailable(); }
void nccl_init(const NcclId&, int, int, int) { unavailable(); }
void nccl_all_reduce(const std::vector<NcclBuffer>&, bool, int) { unavailable(); }
void nccl_broadcast(const std::vector<NcclBuffer>&, int, int) { unavailable(); }

}  // namespace kx::cuda
