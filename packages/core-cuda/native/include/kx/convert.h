// Rows of a floating storage type widened to float32 and float32 rows narrowed back, written once
// for every op family (CPU loops and CUDA kernels alike). The results are bit for bit those of
// kx::to_float / kx::from_float (dtype.h) on each element, NaN included.
//
// On the CPU the 16-bit paths vectorise: bfloat16 is a shift (plain loops the compiler vectorises),
// float16 uses the F16C conversions, 16 lanes with AVX-512 and 8 without. The hardware quiets
// signalling NaNs on the way up and keeps NaN payloads on the way down, where kx keeps the payload
// bits up and writes sign|0x7e00 down (as PyTorch); a block holding a NaN therefore takes the
// scalar conversion, so every input gives the scalar path's bits (checked over all 2^16 halves).
#pragma once
#include <cstdint>

#include "kx/dtype.h"

#if defined(__F16C__) && !defined(__CUDA_ARCH__)
#include <immintrin.h>
#define KX_CONVERT_F16C 1
#endif

namespace kx {

#if defined(KX_CONVERT_F16C)
namespace convert_detail {

// Widens the leading whole vectors of src; returns how many elements were done (a multiple of 8).
inline int64_t widen_half_simd(const half_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    // (maskz forms with a full mask: the plain ones trip GCC 12's -Wmaybe-uninitialized, bug 105593)
    const __m512 v = _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    if (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) {
      for (int k = 0; k < 16; ++k) dst[i + k] = half_to_float(src[i + k].bits);
    } else {
      _mm512_storeu_ps(dst + i, v);
    }
  }
#endif
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
      for (int k = 0; k < 8; ++k) dst[i + k] = half_to_float(src[i + k].bits);
    } else {
      _mm256_storeu_ps(dst + i, v);
    }
  }
  return i;
}

// Narrows the leading whole vectors of src, rounding to nearest even; returns how many were done.
inline int64_t narrow_half_simd(const float* src, half_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(src + i);
    if (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) {
      for (int k = 0; k < 16; ++k) dst[i + k].bits = float_to_half(src[i + k]);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_maskz_cvtps_ph(0xffff, v, _MM_FROUND_TO_NEAREST_INT));
    }
  }
#endif
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
      for (int k = 0; k < 8; ++k) dst[i + k].bits = float_to_half(src[i + k]);
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
  }
  return i;
}

}  // namespace convert_detail
#endif

// dst[i] = to_float(src[i]) for i < n. The float overload copies (nothing when src == dst).
KX_HD void widen(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
KX_HD void widen(const bfloat16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i].bits);
}
KX_HD void widen(const half_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(KX_CONVERT_F16C)
  i = convert_detail::widen_half_simd(src, dst, n);
#endif
  for (; i < n; ++i) dst[i] = half_to_float(src[i].bits);
}

// dst[i] = from_float<T>(src[i]) for i < n. The float overload copies (nothing when src == dst).
KX_HD void narrow(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
KX_HD void narrow(const float* src, bfloat16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i].bits = float_to_bf16(src[i]);
}
KX_HD void narrow(const float* src, half_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(KX_CONVERT_F16C)
  i = convert_detail::narrow_half_simd(src, dst, n);
#endif
  for (; i < n; ++i) dst[i].bits = float_to_half(src[i]);
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
