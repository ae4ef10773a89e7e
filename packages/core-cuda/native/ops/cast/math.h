// Element conversion between any two dtypes, shared by CPU and CUDA. Floats reach 16-bit types by
// round-to-nearest-even through float32 (as PyTorch). Float -> integer truncates toward zero and
// saturates, NaN -> 0 (PyTorch leaves these undefined); int32 -> uint8 keeps the low byte (as C and
// PyTorch).
#pragma once
#include <cstdint>

#include "kx/dtype.h"

namespace kx {

template <class To> struct CastTo;

template <> struct CastTo<float> {
  template <class From> KX_HD static float from(From v) { return to_float(v); }
};
template <> struct CastTo<half_t> {
  template <class From> KX_HD static half_t from(From v) { return half_t{float_to_half(to_float(v))}; }
  KX_HD static half_t from(half_t v) { return v; }
};
template <> struct CastTo<bfloat16_t> {
  template <class From> KX_HD static bfloat16_t from(From v) { return bfloat16_t{float_to_bf16(to_float(v))}; }
  KX_HD static bfloat16_t from(bfloat16_t v) { return v; }
};
template <> struct CastTo<int32_t> {
  template <class From> KX_HD static int32_t from(From v) {
    const float f = to_float(v);
    if (!(f == f)) return 0;
    if (f >= 2147483648.0f) return 2147483647;
    if (f <= -2147483648.0f) return (-2147483647 - 1);
    return (int32_t)f;
  }
  KX_HD static int32_t from(int32_t v) { return v; }
  KX_HD static int32_t from(uint8_t v) { return v; }
};
template <> struct CastTo<uint8_t> {
  template <class From> KX_HD static uint8_t from(From v) {
    const float f = to_float(v);
    if (!(f == f) || f <= 0.0f) return 0;
    if (f >= 255.0f) return 255;
    return (uint8_t)f;
  }
  KX_HD static uint8_t from(int32_t v) { return (uint8_t)(v & 0xff); }
  KX_HD static uint8_t from(uint8_t v) { return v; }
};

}  // namespace kx

// Runs BODY with `scalar_t` bound to the storage type of any dtype.
#define KX_DISPATCH_ALL(DT, ...)                                                       \
  do {                                                                                 \
    switch (DT) {                                                                      \
      case ::kx::DType::Float32: { using scalar_t = float; __VA_ARGS__; break; }        \
      case ::kx::DType::Float16: { using scalar_t = ::kx::half_t; __VA_ARGS__; break; } \
      case ::kx::DType::BFloat16: { using scalar_t = ::kx::bfloat16_t; __VA_ARGS__; break; } \
      case ::kx::DType::Int32: { using scalar_t = int32_t; __VA_ARGS__; break; }        \
      case ::kx::DType::UInt8: { using scalar_t = uint8_t; __VA_ARGS__; break; }        \
    }                                                                                  \
  } while (0)
