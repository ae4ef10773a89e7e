// Storage allocators, one per device type. The core (core/tensor.cpp) allocates, frees and
// zero-fills tensor storage through this table and knows no runtime: each runtime registers its
// allocator when the addon loads (KX_REGISTER_ALLOCATOR: cpu/host_allocator.cpp, and
// cuda/allocator.cu or cuda/no_cuda.cpp), as kernels register with KX_REGISTER_KERNEL. Plain
// function pointers in a table indexed by DeviceType: an allocation costs one indirect call.
#pragma once
#include <cstddef>

#include "kx/device.h"

namespace kx {

struct Allocator {
  // A block of at least `bytes` on device `index`; *capacity receives its real size, to pass back
  // to free. Throws a KexueError (E_OOM, E_NO_CUDA, E_DEVICE...) when there is none to be had.
  void* (*alloc)(size_t bytes, int index, size_t* capacity);
  // Returns a block (ptr may be null for an empty allocation).
  void (*free)(void* ptr, size_t capacity, int index);
  // Fills `bytes` of a block with zeros (on the device's queue, for devices that have one).
  void (*zero)(void* ptr, size_t bytes, int index);
};

void register_allocator(DeviceType type, const Allocator& allocator);
// The allocator registered for `type`; E_INTERNAL when none was.
const Allocator& allocator(DeviceType type);

struct AllocatorRegistrar {
  AllocatorRegistrar(DeviceType type, const Allocator& allocator) { register_allocator(type, allocator); }
};

}  // namespace kx

#define KX_REGISTER_ALLOCATOR(DEVICE, ...) \
  static ::kx::AllocatorRegistrar kx_allocator_##DEVICE(::kx::DeviceType::DEVICE, ::kx::Allocator{__VA_ARGS__})
