// Element types. Half types are stored as their bits and computed in float32; the conversions
// round to nearest even and match PyTorch bit for bit (NaN included).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "kx/error.h"
#include "kx/math.h"

namespace kx {

enum class DType : uint8_t { Float32 = 0, Float16 = 1, BFloat16 = 2, Int32 = 3, UInt8 = 4 };
constexpr int kNumDTypes = 5;

size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool dtype_from_name(const std::string& name, DType* out);
inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float16 || t == DType::BFloat16; }

// Storage types for the two 16-bit floats: distinct types so overloads pick the right conversion.
struct half_t { uint16_t bits; };
struct bfloat16_t { uint16_t bits; };

KX_HD uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
KX_HD float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// IEEE binary16 -> float32 (exact).
KX_HD float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  // zero or subnormal: mant * 2^-24, exact in float32
  const float v = (float)mant * 5.9604644775390625e-08f;
  return sign ? -v : v;
}

// float32 -> binary16, round to nearest even; overflow to inf; NaN -> sign|0x7e00 (as PyTorch).
KX_HD uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00;
  if (ax >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {
    // Below 2^-14: adding 0.5f puts the half subnormal unit (2^-24) at float32's last bit, so the
    // FPU's own round-to-nearest-even does the rounding.
    const float v = bits_float(ax) + 0.5f;
    return sign | (uint16_t)(float_bits(v) - 0x3f000000u);
  }
  const uint32_t odd = (ax >> 13) & 1u;
  ax += 0xc8000fffu + odd;  // rebias exponent by -112 and add the rounding bias
  return sign | (uint16_t)(ax >> 13);
}

KX_HD float bf16_to_float(uint16_t b) { return bits_float((uint32_t)b << 16); }

// float32 -> bfloat16, round to nearest even; every NaN -> 0x7fc0 (as PyTorch).
KX_HD uint16_t float_to_bf16(float f) {
  if (f != f) return 0x7fc0;
  const uint32_t u = float_bits(f);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

KX_HD float to_float(float v) { return v; }
KX_HD float to_float(half_t v) { return half_to_float(v.bits); }
KX_HD float to_float(bfloat16_t v) { return bf16_to_float(v.bits); }
KX_HD float to_float(int32_t v) { return (float)v; }
KX_HD float to_float(uint8_t v) { return (float)v; }

template <class T> KX_HD T from_float(float v);
template <> KX_HD float from_float<float>(float v) { return v; }
template <> KX_HD half_t from_float<half_t>(float v) { return half_t{float_to_half(v)}; }
template <> KX_HD bfloat16_t from_float<bfloat16_t>(float v) { return bfloat16_t{float_to_bf16(v)}; }

}  // namespace kx

// Runs BODY with `scalar_t` bound to the storage type of a floating dtype.
#define KX_DISPATCH_FLOAT(DT, ...)                                                   \
  do {                                                                               \
    switch (DT) {                                                                    \
      case ::kx::DType::Float32: { using scalar_t = float; __VA_ARGS__; break; }      \
      case ::kx::DType::Float16: { using scalar_t = ::kx::half_t; __VA_ARGS__; break; } \
      case ::kx::DType::BFloat16: { using scalar_t = ::kx::bfloat16_t; __VA_ARGS__; break; } \
      default: ::kx::fail(::kx::Code::DType, "expected a floating dtype, got ", ::kx::dtype_name(DT)); \
    }                                                                                \
  } while (0)
