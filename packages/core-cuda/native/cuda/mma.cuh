// The tensor-core step every half-precision kernel builds on (matmul's ops/matmul/kernels.cuh and
// the flash attention of ops/attention/kernels.cuh): one mma.sync m16n8k16 with float32
// accumulators, for kx::half_t or kx::bfloat16_t operands packed two to a 32-bit register.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kx/dtype.h"

namespace kx::cuda {

// d += a · b (a: 16 x 16 row-major, b: 16 x 8 column-major, pairs of T per register).
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, half_t>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

}  // namespace kx::cuda
