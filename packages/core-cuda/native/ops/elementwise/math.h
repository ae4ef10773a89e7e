// The math of one element for the elementwise family, shared by the CPU loops (elementwise.cpp)
// and the CUDA kernels (elementwise.cu): binary operators as functors, unary functions with their
// derivatives, bias + GELU, all computed in float32. Derivatives take both x and y = f(x) because
// several are cheapest (and match PyTorch's autograd formulas) in terms of the output.
#pragma once
#include <cstdint>
#include <cstring>

#include "kx/math.h"

namespace kx {

// ---- binary operators -------------------------------------------------------------------------

struct AddOp { KX_HD static float apply(float a, float b) { return a + b; } };
struct SubOp { KX_HD static float apply(float a, float b) { return a - b; } };
struct MulOp { KX_HD static float apply(float a, float b) { return a * b; } };
struct DivOp { KX_HD static float apply(float a, float b) { return a / b; } };

// ---- unary functions ----------------------------------------------------------------------------

enum class UnaryFn : uint8_t { Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, Silu, Gelu, GeluTanh, Pow };

// "gelu" with approximate "tanh" selects GeluTanh. Returns false for an unknown name.
inline bool unary_fn_from_name(const char* name, bool tanh_approx, UnaryFn* out) {
  struct Entry { const char* name; UnaryFn fn; };
  static const Entry table[] = {
      {"neg", UnaryFn::Neg},       {"exp", UnaryFn::Exp},         {"log", UnaryFn::Log},
      {"sqrt", UnaryFn::Sqrt},     {"rsqrt", UnaryFn::Rsqrt},     {"tanh", UnaryFn::Tanh},
      {"sigmoid", UnaryFn::Sigmoid}, {"relu", UnaryFn::Relu},     {"silu", UnaryFn::Silu},
      {"gelu", UnaryFn::Gelu},     {"pow", UnaryFn::Pow},
  };
  for (const Entry& e : table) {
    if (std::strcmp(e.name, name) == 0) {
      *out = (e.fn == UnaryFn::Gelu && tanh_approx) ? UnaryFn::GeluTanh : e.fn;
      return true;
    }
  }
  return false;
}

// Phi(x) = (1 + erf(x / sqrt 2)) / 2 for GELU, with erf from Abramowitz-Stegun 7.1.26 alone
// (|error| <= 1.5e-7, PyTorch's CPU choice): erf(a) = 1 - poly(t) e^(-a^2), t = 1 / (1 + p a), for
// a = |x| / sqrt 2, odd in x. Phi is near 1/2 where erf would need Cephes' small-argument polynomial
// for relative accuracy, so one formula serves every x; 1 + erf rounds as PyTorch's (GELU(-10) = 0).
KX_HD float gelu_cdf(float x) {
#if defined(__CUDA_ARCH__)
  return 0.5f * (1.0f + erff(x * kInvSqrt2));
#else
  const float a = fabsf(x) * kInvSqrt2;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  const float erf_a = fabsf(1.0f - poly * exp_fast(-(a * a)));
  return 0.5f * (1.0f + copysignf(erf_a, x));
#endif
}

#if defined(__AVX512F__) && !defined(__CUDA_ARCH__)
// gelu_cdf on 16 lanes: the same steps, with exp16_ (within an ulp of it).
inline __m512 gelu_cdf16_(__m512 x) {
  const __m512 a = _mm512_abs_ps(x) * kInvSqrt2;
  const __m512 t = 1.0f / (1.0f + 0.3275911f * a);
  const __m512 poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  const __m512 erf_a = _mm512_abs_ps(1.0f - poly * exp16_(-(a * a)));
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
  return 0.5f * (1.0f + _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_a), sign)));
}
#endif

// GELU, exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
KX_HD float gelu_erf(float x) { return x * gelu_cdf(x); }
// d/dx: Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
KX_HD float gelu_erf_grad(float x) {
  constexpr float kInvSqrt2Pi = 0.3989422804014327f;
  const float pdf = kInvSqrt2Pi * exp_fast(-0.5f * x * x);
  return gelu_cdf(x) + x * pdf;
}

// y[k] = gelu_erf(x[k]) for k < n: the loop of every CPU GELU forward, 16 lanes at a time where the
// CPU has AVX-512 (about 1.5x the auto-vectorised gelu_erf), the last partial vector masked so
// that every element goes through the same instructions wherever it sits.
KX_HD void gelu_erf_run(const float* x, float* y, int64_t n) {
#if defined(__AVX512F__) && !defined(__CUDA_ARCH__)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, v * gelu_cdf16_(v));
  }
#else
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf(x[i]);
#endif
}

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
KX_HD float gelu_tanh(float x) {
  const float inner = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanh_fast(inner));
}
KX_HD float gelu_tanh_grad(float x) {
  const float x2 = x * x;
  const float t = tanh_fast(kSqrt2OverPi * (x + 0.044715f * x2 * x));
  const float dinner = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x2);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dinner;
}

// SiLU (swish): x sigmoid(x); d/dx = s (1 + x (1 - s)).
// sigmoid through the vectorisable exp (math.h's sigmoid keeps libm's expf).
KX_HD float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

KX_HD float silu(float x) { return x / (1.0f + exp_fast(-x)); }
KX_HD float silu_grad(float x) {
  const float s = sigmoid_fast(x);
  return s * (1.0f + x * (1.0f - s));
}

// NaN passes through (as PyTorch): the select keeps x unless x < 0.
KX_HD float relu(float x) { return x < 0.0f ? 0.0f : x; }

// x^p; the common exponents take exact shortcuts (as PyTorch does).
KX_HD float pow_scalar(float x, float p) {
  if (p == 2.0f) return x * x;
  if (p == 1.0f) return x;
  if (p == 0.5f) return sqrtf(x);
  if (p == 3.0f) return x * x * x;
  if (p == -1.0f) return 1.0f / x;
  return powf(x, p);
}
// p x^(p-1); exactly 0 for p == 0 (PyTorch's rule), so x = 0 gives no NaN there.
KX_HD float pow_scalar_grad(float x, float p) {
  if (p == 0.0f) return 0.0f;
  if (p == 1.0f) return 1.0f;
  if (p == 2.0f) return 2.0f * x;
  return p * pow_scalar(x, p - 1.0f);
}

// y = f(x) for UnaryFn F; p is pow's exponent (ignored by the others).
template <UnaryFn F> struct Unary;
template <> struct Unary<UnaryFn::Neg> {
  KX_HD static float f(float x, float) { return -x; }
  KX_HD static float df(float, float, float) { return -1.0f; }
};
template <> struct Unary<UnaryFn::Exp> {
  KX_HD static float f(float x, float) { return exp_fast(x); }
  KX_HD static float df(float, float y, float) { return y; }
};
template <> struct Unary<UnaryFn::Log> {
  KX_HD static float f(float x, float) { return logf(x); }
  KX_HD static float df(float x, float, float) { return 1.0f / x; }
};
template <> struct Unary<UnaryFn::Sqrt> {
  KX_HD static float f(float x, float) { return sqrtf(x); }
  KX_HD static float df(float, float y, float) { return 0.5f / y; }
};
template <> struct Unary<UnaryFn::Rsqrt> {
  KX_HD static float f(float x, float) { return 1.0f / sqrtf(x); }
  KX_HD static float df(float, float y, float) { return -0.5f * y * y * y; }
};
template <> struct Unary<UnaryFn::Tanh> {
  KX_HD static float f(float x, float) { return tanh_fast(x); }
  KX_HD static float df(float, float y, float) { return 1.0f - y * y; }
};
template <> struct Unary<UnaryFn::Sigmoid> {
  KX_HD static float f(float x, float) { return sigmoid_fast(x); }
  KX_HD static float df(float, float y, float) { return y * (1.0f - y); }
};
template <> struct Unary<UnaryFn::Relu> {
  KX_HD static float f(float x, float) { return relu(x); }
  // The subgradient at 0 is 0 and a NaN passes the gradient on, both as PyTorch's threshold_backward.
  KX_HD static float df(float x, float, float) { return x <= 0.0f ? 0.0f : 1.0f; }
};
template <> struct Unary<UnaryFn::Silu> {
  KX_HD static float f(float x, float) { return silu(x); }
  KX_HD static float df(float x, float, float) { return silu_grad(x); }
};
template <> struct Unary<UnaryFn::Gelu> {
  KX_HD static float f(float x, float) { return gelu_erf(x); }
  KX_HD static float df(float x, float, float) { return gelu_erf_grad(x); }
};
template <> struct Unary<UnaryFn::GeluTanh> {
  KX_HD static float f(float x, float) { return gelu_tanh(x); }
  KX_HD static float df(float x, float, float) { return gelu_tanh_grad(x); }
};
template <> struct Unary<UnaryFn::Pow> {
  KX_HD static float f(float x, float p) { return pow_scalar(x, p); }
  KX_HD static float df(float x, float, float p) { return pow_scalar_grad(x, p); }
};

// ---- bias + GELU (the fused tier's bias_gelu) ----------------------------------------------------
// y = gelu(x + b), dx = dy·gelu'(x + b) (x + b is recomputed in the backward rather than stored).

// kTanh selects GELU's tanh approximation (torch's approximate='tanh').
template <bool kTanh>
KX_HD float bias_gelu(float x, float bias) {
  const float z = x + bias;
  return kTanh ? gelu_tanh(z) : gelu_erf(z);
}

template <bool kTanh>
KX_HD float bias_gelu_grad(float dy, float x, float bias) {
  const float z = x + bias;
  return dy * (kTanh ? gelu_tanh_grad(z) : gelu_erf_grad(z));
}

}  // namespace kx

// Runs BODY with `kFn` bound (as a constexpr UnaryFn) to the runtime value FN, so that each
// function gets its own loop the compiler can optimise.
#define KX_DISPATCH_UNARY(FN, ...)                                                        \
  do {                                                                                    \
    switch (FN) {                                                                         \
      case ::kx::UnaryFn::Neg: { constexpr auto kFn = ::kx::UnaryFn::Neg; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Exp: { constexpr auto kFn = ::kx::UnaryFn::Exp; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Log: { constexpr auto kFn = ::kx::UnaryFn::Log; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Sqrt: { constexpr auto kFn = ::kx::UnaryFn::Sqrt; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Rsqrt: { constexpr auto kFn = ::kx::UnaryFn::Rsqrt; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Tanh: { constexpr auto kFn = ::kx::UnaryFn::Tanh; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Sigmoid: { constexpr auto kFn = ::kx::UnaryFn::Sigmoid; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Relu: { constexpr auto kFn = ::kx::UnaryFn::Relu; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Silu: { constexpr auto kFn = ::kx::UnaryFn::Silu; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Gelu: { constexpr auto kFn = ::kx::UnaryFn::Gelu; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::GeluTanh: { constexpr auto kFn = ::kx::UnaryFn::GeluTanh; __VA_ARGS__; break; } \
      case ::kx::UnaryFn::Pow: { constexpr auto kFn = ::kx::UnaryFn::Pow; __VA_ARGS__; break; } \
    }                                                                                     \
  } while (0)
