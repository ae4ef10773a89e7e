// The math of one element or one row, written once: __host__ __device__ under nvcc, plain inline
// under g++. The CPU backend runs these in loops and the CUDA backend in kernels, so the CPU tests
// exercise the arithmetic the GPU runs.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KX_HD __host__ __device__ __forceinline__
#else
#define KX_HD inline
#endif

namespace kx {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;

KX_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

}  // namespace kx
