// Rows of a floating storage type widened to float32 and float32 rows narrowed back, written once
// for every op family (CPU loops and CUDA kernels alike). The results are bit for bit those of
// kx::to_float / kx::from_float (dtype.h) on each element, NaN included.
//
// On the CPU the 16-bit paths are the dispatched vector runs of kx/simd.h (bfloat16: integer shifts
// and rounding; float16: F16C where the CPU has AVX2).
#pragma once
#include <cstdint>

#include "kx/dtype.h"

namespace kx {

// dst[i] = to_float(src[i]) for i < n. The float overload copies (nothing when src == dst).
KX_HD void widen(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
KX_HD void widen(const bfloat16_t* src, float* dst, int64_t n) {
#if defined(__CUDA_ARCH__)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i].bits);
#else
  simd::widen_bf16(src, dst, n);
#endif
}
KX_HD void widen(const half_t* src, float* dst, int64_t n) {
#if defined(__CUDA_ARCH__)
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i].bits);
#else
  simd::widen_half(src, dst, n);
#endif
}

// dst[i] = from_float<T>(src[i]) for i < n. The float overload copies (nothing when src == dst).
KX_HD void narrow(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
KX_HD void narrow(const float* src, bfloat16_t* dst, int64_t n) {
#if defined(__CUDA_ARCH__)
  for (int64_t i = 0; i < n; ++i) dst[i].bits = float_to_bf16(src[i]);
#else
  simd::narrow_bf16(src, dst, n);
#endif
}
KX_HD void narrow(const float* src, half_t* dst, int64_t n) {
#if defined(__CUDA_ARCH__)
  for (int64_t i = 0; i < n; ++i) dst[i].bits = float_to_half(src[i]);
#else
  simd::narrow_half(src, dst, n);
#endif
}

// A row of n elements seen as float32: a float row itself, any other row widened into the
// caller's buffer of n floats.
KX_HD const float* load_row(const float* p, int64_t, float*) { return p; }
template <class T> KX_HD const float* load_row(const T* p, int64_t n, float* buf) {
  widen(p, buf, n);
  return buf;
}

// Where a row's float32 result is computed: in place for a float row, else in `buf`; then
// narrow(result, p, n) stores it (nothing to do for float).
KX_HD float* out_row(float* p, float*) { return p; }
template <class T> KX_HD float* out_row(T*, float* buf) { return buf; }

}  // namespace kx
