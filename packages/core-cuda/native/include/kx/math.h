// The math of one element or one row, written once: __host__ __device__ under nvcc, plain inline
// under g++. The CPU backend runs these in loops and the CUDA backend in kernels, so the CPU tests
// exercise the arithmetic the GPU runs.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) && !defined(__CUDA_ARCH__)
#include <immintrin.h>
#endif

#if defined(__CUDACC__)
#define KX_HD __host__ __device__ __forceinline__
#else
#define KX_HD inline
#endif

// Marks a reduction loop for the CPU compiler's vectoriser (an OpenMP simd pragma: the build passes
// -fopenmp-simd, which honours these pragmas and starts no threads). The device has no use for it.
#define KX_PRAGMA_(text) _Pragma(#text)
#if defined(__CUDA_ARCH__)
#define KX_SIMD_REDUCE(clauses)
#else
#define KX_SIMD_REDUCE(clauses) KX_PRAGMA_(omp simd clauses)
#endif

namespace kx {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;

KX_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// ---- vectorisable transcendentals -------------------------------------------------------------
// glibc's expf/tanhf/erff are scalar calls that stop -O3 from vectorising a loop (its SIMD variants
// need -ffast-math). These are branch-free (selects only) so that a loop over them vectorises,
// and as accurate as PyTorch's own CPU kernels (Cephes / Sleef class, a few ulp). On the device
// the hardware's functions are used instead.

KX_HD float bits_to_float_(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// 2^k for integer k in [-126, 127], by building the exponent field.
KX_HD float exp2i_(int32_t k) { return bits_to_float_((uint32_t)(k + 127) << 23); }

// The two halves of e^x = 2^n e^r, for a float or (on the CPU) a SIMD vector of floats: r = x - n ln2
// with ln2 in two parts, and e^r on |r| <= ln2/2 by Cephes expf's degree-6 polynomial.
template <class V> KX_HD V exp_remainder_(V x, V n) { return (x - n * 0.693359375f) - n * -2.12194440e-4f; }
template <class V> KX_HD V exp_poly_(V r) {
  return ((((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
            1.6666665459e-1f) * r + 5.0000001201e-1f) * (r * r) + r) + 1.0f;
}

// e^x, <= 1 ulp: 2^n e^r with 2^n split in two factors so that subnormal results come out right.
// The clamp is chosen so that the ends need no selects of their own: e^89 overflows to inf in the
// product and e^-104 rounds to 0; a NaN passes the clamp (the comparisons are false) and stays NaN
// through r and p.
KX_HD float exp_fast(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  float xc = x > 89.0f ? 89.0f : x;  // vminps/vmaxps, NaN kept
  xc = xc < -104.0f ? -104.0f : xc;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (floorf would not vectorise under -ftrapping-math).
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float p = exp_poly_(exp_remainder_(xc, n));
  const int32_t ni = (int32_t)(n == n ? n : 0.0f);  // no float-to-int conversion of a NaN
  const int32_t n1 = ni >> 1;
  return p * exp2i_(n1) * exp2i_(ni - n1);
#endif
}

#if defined(__AVX512F__) && !defined(__CUDA_ARCH__)
// exp_fast on 16 lanes, the same steps (results within an ulp of it), with AVX-512's vscalefps for
// p 2^n: one instruction that also rounds subnormals and overflows right, instead of two factors.
inline __m512 exp16_(__m512 x) {
  // (the zero-masked forms with every lane selected: gcc 12 warns about the plain ones' undefined
  // pass-through operand)
  constexpr __mmask16 all = 0xFFFF;
  const __m512 xc = _mm512_maskz_max_ps(all, _mm512_set1_ps(-104.0f), _mm512_maskz_min_ps(all, _mm512_set1_ps(89.0f), x));  // NaN kept
  const __m512 n = _mm512_maskz_roundscale_ps(all, xc * 1.44269504088896341f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_maskz_scalef_ps(all, exp_poly_(exp_remainder_(xc, n)), n);
}
#endif

// e[k] = exp_fast(x[k] - shift) for k < n (e may be x): the loop of the row softmaxes. The CPU
// runs it 16 lanes at a time where it has AVX-512 (about 2x the auto-vectorised exp_fast), the
// last partial vector masked so that every element goes through the same instructions.
KX_HD void exp_shifted_run(const float* x, float* e, int64_t n, float shift) {
#if defined(__AVX512F__) && !defined(__CUDA_ARCH__)
  const __m512 s = _mm512_set1_ps(shift);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(e + i, m, exp16_(_mm512_maskz_loadu_ps(m, x + i) - s));
  }
#else
  for (int64_t i = 0; i < n; ++i) e[i] = exp_fast(x[i] - shift);
#endif
}

// tanh, a few ulp (Cephes tanhf): an odd polynomial below 0.625, 1 - 2 / (e^{2|x|} + 1) above.
KX_HD float tanh_fast(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  const float ax = fabsf(x);
  const float z = x * x;
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  const float big = 1.0f - 2.0f / (exp_fast(2.0f * ax) + 1.0f);
  return ax < 0.625f ? small : copysignf(big, x);
#endif
}

}  // namespace kx
