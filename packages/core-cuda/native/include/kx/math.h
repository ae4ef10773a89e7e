// The math of one element or one row, written once: __host__ __device__ under nvcc, plain inline
// under g++. The CPU backend runs these in loops and the CUDA backend in kernels, so the CPU tests
// exercise the arithmetic the GPU runs.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kx/simd.h"

#if defined(__CUDACC__)
#define KX_HD __host__ __device__ __forceinline__
#else
#define KX_HD inline
#endif

namespace kx {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;

KX_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// ---- vectorisable transcendentals -------------------------------------------------------------
// glibc's expf/tanhf/erff are scalar calls that stop -O3 from vectorising a loop (its SIMD variants
// need -ffast-math). These are branch-free (selects only) and as accurate as PyTorch's own CPU
// kernels (Cephes / Sleef class, a few ulp); their formulas are kx/math_formulas.inc, which the
// CPU's vector runs (kx/simd.h) share. On the device the hardware's functions are used instead.

#include "kx/math_formulas.inc"

KX_HD float bits_to_float_(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// 2^k for integer k in [-126, 127], by building the exponent field.
KX_HD float exp2i_(int32_t k) { return bits_to_float_((uint32_t)(k + 127) << 23); }

// e^x, <= 1 ulp: 2^n e^r with 2^n split in two factors so that subnormal results come out right.
// The clamp is chosen so that the ends need no selects of their own: e^89 overflows to inf in the
// product and e^-104 rounds to 0; a NaN passes the clamp (the comparisons are false) and stays NaN
// through r and p.
KX_HD float exp_fast(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  float xc = x > kExpMax ? kExpMax : x;  // NaN kept
  xc = xc < kExpMin ? kExpMin : xc;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (floorf would not vectorise under -ftrapping-math).
  const float n = (xc * kExpLog2e + kExpShifter) - kExpShifter;
  const float p = exp_poly_(exp_remainder_(xc, n));
  const int32_t ni = (int32_t)(n == n ? n : 0.0f);  // no float-to-int conversion of a NaN
  const int32_t n1 = ni >> 1;
  return p * exp2i_(n1) * exp2i_(ni - n1);
#endif
}

// e[k] = exp_fast(x[k] - shift) for k < n (e may be x): a row's probabilities from its logsumexp
// (the attention backward), run on the CPU by the dispatched vector run.
KX_HD void exp_shifted_run(const float* x, float* e, int64_t n, float shift) {
#if defined(__CUDA_ARCH__)
  for (int64_t i = 0; i < n; ++i) e[i] = exp_fast(x[i] - shift);
#else
  simd::exp_shifted(x, e, n, shift);
#endif
}

// tanh, a few ulp (Cephes tanhf).
KX_HD float tanh_fast(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  const float ax = fabsf(x);
  return ax < kTanhCut ? tanh_small_(x, x * x) : copysignf(tanh_big_(exp_fast(2.0f * ax)), x);
#endif
}

}  // namespace kx
