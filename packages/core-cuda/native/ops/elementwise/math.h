// The math of one element for the elementwise family, shared by the CPU loops (elementwise.cpp)
// and the CUDA kernels (elementwise.cu): binary operators as functors (the CUDA kernels'; the CPU's
// binary vector run of kx/simd.h does the same single IEEE operation), unary functions with their
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
// (kx/math_formulas.inc), odd in x. Phi is near 1/2 where erf would need Cephes' small-argument
// polynomial for relative accuracy, so one formula serves every x; 1 + erf rounds as PyTorch's
// (GELU(-10) = 0). The CPU's loops run these formulas as the vector runs of kx/simd.h.
KX_HD float gelu_cdf(float x) {
#if defined(__CUDA_ARCH__)
  return 0.5f * (1.0f + erff(x * kInvSqrt2));
#else
  const float a = fabsf(x) * kInvSqrt2;
  const float erf_a = fabsf(1.0f - erf_as_poly_(erf_as_t_(a)) * exp_fast(-(a * a)));
  return gelu_cdf_from_erf_(copysignf(erf_a, x));
#endif
}

// GELU, exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
KX_HD float gelu_erf(float x) { return x * gelu_cdf(x); }
// d/dx: Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
KX_HD float gelu_erf_grad(float x) { return gelu_erf_grad_from_(x, gelu_cdf(x), exp_fast(-0.5f * x * x)); }

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
KX_HD float gelu_tanh(float x) { return gelu_tanh_from_(x, tanh_fast(gelu_tanh_inner_(x))); }
KX_HD float gelu_tanh_grad(float x) { return gelu_tanh_grad_from_(x, tanh_fast(gelu_tanh_inner_(x))); }

// SiLU (swish): x sigmoid(x); d/dx = s (1 + x (1 - s)).
// sigmoid through the vectorisable exp (math.h's sigmoid keeps libm's expf).
KX_HD float sigmoid_fast(float x) { return sigmoid_from_(exp_fast(-x)); }

KX_HD float silu(float x) { return silu_from_(x, exp_fast(-x)); }
KX_HD float silu_grad(float x) { return silu_grad_from_(x, sigmoid_fast(x)); }

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
