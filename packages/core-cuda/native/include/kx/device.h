// Devices: the CPU, and CUDA devices when the build has CUDA and the machine has a GPU.
#pragma once
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

namespace cuda {
bool compiled();                        // the addon was built with CUDA
std::string compiled_archs();           // e.g. "80;90"
int runtime_version();                  // cudart version compiled in, 0 without CUDA
int device_count();                     // 0 on a machine without GPU or driver
std::string unavailable_reason();       // why device_count() is 0, when it is
std::vector<CudaDeviceInfo> devices();
void* alloc(size_t bytes, int device);  // raw device memory; E_OOM with sizes on failure
void free(void* ptr, int device);
void copy_to_device(void* dst, const void* src, size_t bytes, int device);
void copy_to_host(void* dst, const void* src, size_t bytes, int device);
}  // namespace cuda

}  // namespace kx
