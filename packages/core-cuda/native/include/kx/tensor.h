// Tensors: contiguous row-major storage with a shape and dtype. Views exist only for reshape, which
// shares the storage.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kx/device.h"
#include "kx/dtype.h"

namespace kx {

using Shape = std::vector<int64_t>;

int64_t numel_of(const Shape& s);
std::string shape_str(const Shape& s);

// Owns one allocation. Live bytes are counted for memory().
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  size_t capacity = 0;  // the block's real size in its device's allocator (kx/allocator.h)
  Device device;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  Shape shape;
  DType dtype = DType::Float32;

  bool defined() const { return storage != nullptr; }
  int64_t numel() const { return numel_of(shape); }
  int64_t dim() const { return (int64_t)shape.size(); }
  int64_t size(int64_t axis) const { return shape[axis < 0 ? axis + dim() : axis]; }
  size_t nbytes() const { return (size_t)numel() * dtype_size(dtype); }
  Device device() const { return storage->device; }
  void* raw() const { return storage->data; }
  template <class T> T* data() const { return static_cast<T*>(storage->data); }
};

// A new uninitialised / zero-filled tensor.
Tensor empty(const Shape& shape, DType dtype, Device device);
Tensor zeros(const Shape& shape, DType dtype, Device device);
// The same storage under another shape of equal numel.
Tensor view(const Tensor& t, const Shape& shape);

// Live tensor storage, for memory() (the runtimes report their caches themselves: runtime/runtime.h).
struct MemoryStats {
  int64_t storages;
  int64_t bytes;
  int64_t peak_bytes;
  int64_t cuda_bytes;
};
MemoryStats memory_stats();

}  // namespace kx
