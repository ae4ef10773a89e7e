// The CUDA entry points of a build made without nvcc: no devices, and a typed error for any use.
#include "kx/device.h"
#include "kx/error.h"

namespace kx::cuda {

bool compiled() { return false; }
std::string compiled_archs() { return ""; }
int runtime_version() { return 0; }
int device_count() { return 0; }
std::string unavailable_reason() { return "this build of kexue was compiled without CUDA (nvcc not found)"; }
std::vector<CudaDeviceInfo> devices() { return {}; }
void* alloc(size_t, int) { fail(Code::NoCuda, "CUDA is not available: ", unavailable_reason()); }
void free(void*, int) {}
void copy_to_device(void*, const void*, size_t, int) { fail(Code::NoCuda, "CUDA is not available: ", unavailable_reason()); }
void copy_to_host(void*, const void*, size_t, int) { fail(Code::NoCuda, "CUDA is not available: ", unavailable_reason()); }

}  // namespace kx::cuda
