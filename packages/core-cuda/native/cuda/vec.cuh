// Device helpers shared by the elementwise-style CUDA kernels (ops/*.cu): 16-byte vectors of storage
// elements, widened to float32 and narrowed back with kx/dtype.h's conversions (so the bits are
// those of the CPU's), and grid-stride indexing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kx/dtype.h"

namespace kx::cuda {

constexpr int kThreads = 256;  // threads per block of the elementwise kernels

// One 16-byte access: 4 float32s or 8 halves.
template <class T>
struct alignas(16) Vec16 {
  static constexpr int N = 16 / (int)sizeof(T);
  T v[N];
};

inline bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

// How many whole 16-byte vectors a grid-stride loop over n elements of T can use: 0 unless every
// pointer is aligned.
template <class T, class... Ptrs>
int64_t vec_count(int64_t n, const Ptrs*... ptrs) {
  const bool ok = (aligned16(ptrs) && ...);
  return ok ? n / Vec16<T>::N : 0;
}

__device__ __forceinline__ int64_t thread_index() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return (int64_t)gridDim.x * blockDim.x; }

// Vector i of p (in units of Vec16<T>) as float32.
template <class T>
__device__ __forceinline__ void load_vec(const T* p, int64_t i, float (&out)[Vec16<T>::N]) {
  const Vec16<T> v = reinterpret_cast<const Vec16<T>*>(p)[i];
#pragma unroll
  for (int k = 0; k < Vec16<T>::N; ++k) out[k] = to_float(v.v[k]);
}

template <class T>
__device__ __forceinline__ void store_vec(T* p, int64_t i, const float (&in)[Vec16<T>::N]) {
  Vec16<T> v;
#pragma unroll
  for (int k = 0; k < Vec16<T>::N; ++k) v.v[k] = from_float<T>(in[k]);
  reinterpret_cast<Vec16<T>*>(p)[i] = v;
}

}  // namespace kx::cuda
