// The vector runs of kx/simd.h, written once with Google Highway and compiled for every x86 target
// (foreach_target.h includes this file again per target, each time inside that target's namespace
// and instruction set); HWY_DYNAMIC_DISPATCH calls the best target the CPU has and KEXUE_SIMD
// allows (target.cpp). The element formulas are kx/math_formulas.inc, included in each target's
// namespace; what differs from the scalar functions of kx/math.h is only the selects and the bit
// tricks, which each form writes with its own operations.
#include <cstdint>
#include <cstring>

#include "kx/dtype.h"
#include "kx/math.h"
#include "kx/philox.h"
#include "kx/simd.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd/runs.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace kx {
namespace simd_targets {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

HWY_INLINE V splat(float c) { return hn::Set(D(), c); }

// A vector with the arithmetic of a float, against floats too: the lane type of math_formulas.inc.
struct Lanes {
  V v;
};
HWY_INLINE Lanes operator+(Lanes a, Lanes b) { return {hn::Add(a.v, b.v)}; }
HWY_INLINE Lanes operator-(Lanes a, Lanes b) { return {hn::Sub(a.v, b.v)}; }
HWY_INLINE Lanes operator*(Lanes a, Lanes b) { return {hn::Mul(a.v, b.v)}; }
HWY_INLINE Lanes operator/(Lanes a, Lanes b) { return {hn::Div(a.v, b.v)}; }
HWY_INLINE Lanes operator+(Lanes a, float b) { return a + Lanes{splat(b)}; }
HWY_INLINE Lanes operator-(Lanes a, float b) { return a - Lanes{splat(b)}; }
HWY_INLINE Lanes operator*(Lanes a, float b) { return a * Lanes{splat(b)}; }
HWY_INLINE Lanes operator+(float a, Lanes b) { return Lanes{splat(a)} + b; }
HWY_INLINE Lanes operator-(float a, Lanes b) { return Lanes{splat(a)} - b; }
HWY_INLINE Lanes operator*(float a, Lanes b) { return Lanes{splat(a)} * b; }
HWY_INLINE Lanes operator/(float a, Lanes b) { return Lanes{splat(a)} / b; }

#include "kx/math_formulas.inc"

// kx::exp_fast on lanes, the same steps: clamp (NaN kept: the comparisons are false), n = round(x /
// ln2) by adding 1.5 * 2^23 (whose low mantissa bits are then n as an integer: no conversion
// instruction, and a NaN's garbage n meets a NaN polynomial), the polynomial, and 2^n as two
// factors so that subnormal results round once.
HWY_INLINE V Exp(V x) {
  // x86's min/max return their second operand when either is NaN, so x's NaN is kept; the scalar
  // target's return the other one, so there the NaN is put back.
  V xc = hn::Max(splat(-104.0f), hn::Min(splat(89.0f), x));
#if HWY_TARGET == HWY_SCALAR
  xc = hn::IfThenElse(hn::IsNaN(x), x, xc);
#endif
  const V shifted = hn::Add(hn::Mul(xc, splat(1.44269504088896341f)), splat(12582912.0f));
  const V n = hn::Sub(shifted, splat(12582912.0f));
  const V p = exp_poly_(exp_remainder_(Lanes{xc}, Lanes{n})).v;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // AVX-512's vscalefps: p 2^n in one instruction that also rounds subnormal results once (the two
  // factors below cost GELU and softmax a tenth of their time). The zero-masked form with every
  // lane selected: gcc 12 warns about the plain one's undefined pass-through operand.
  return V{_mm512_maskz_scalef_ps(0xFFFF, p.raw, n.raw)};
#else
  const D d;
  const hn::RebindToSigned<D> di;
  const auto ni = hn::Sub(hn::BitCast(di, shifted), hn::Set(di, 0x4B400000));  // the bits of 1.5 * 2^23
  const auto n1 = hn::ShiftRight<1>(ni);
  const auto bias = hn::Set(di, 127);
  const V scale1 = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(n1, bias)));
  const V scale2 = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::Sub(ni, n1), bias)));
  return hn::Mul(hn::Mul(p, scale1), scale2);
#endif
}

// kx::tanh_fast on lanes.
HWY_INLINE V Tanh(V x) {
  const V ax = hn::Abs(x);
  const V small = tanh_small_(Lanes{x}, Lanes{hn::Mul(x, x)}).v;
  const V big = tanh_big_(Lanes{Exp(hn::Add(ax, ax))}).v;
  return hn::IfThenElse(hn::Lt(ax, splat(0.625f)), small, hn::CopySign(big, x));
}

// kx::gelu_cdf on lanes.
HWY_INLINE V GeluCdf(V x) {
  const Lanes a{hn::Mul(hn::Abs(x), splat(kInvSqrt2))};
  const V e = Exp(hn::Neg(hn::Mul(a.v, a.v)));
  const V erf_a = hn::Abs((1.0f - erf_as_poly_(erf_as_t_(a)) * Lanes{e}).v);
  return gelu_cdf_from_erf_(Lanes{hn::CopySign(erf_a, x)}).v;
}

HWY_INLINE V Sigmoid(V x) { return sigmoid_from_(Lanes{Exp(hn::Neg(x))}).v; }

// y = f(x) over n elements; the last partial vector goes through a zero-padded buffer, so that it
// takes the instructions of the whole ones.
template <class F>
HWY_INLINE void MapRun(const float* x, float* y, int64_t n, F f) {
  const D d;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(f(hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)] = {};
    std::memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
    hn::Store(f(hn::Load(d, buf)), d, buf);
    std::memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
  }
}

// dx = dy * f'(x) over n elements, the tail as MapRun's.
template <class F>
HWY_INLINE void GradRun(const float* x, const float* dy, float* dx, int64_t n, F grad) {
  const D d;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, dy + i), grad(hn::LoadU(d, x + i))), d, dx + i);
  if (i < n) {
    HWY_ALIGN float bx[HWY_MAX_BYTES / sizeof(float)] = {};
    HWY_ALIGN float bd[HWY_MAX_BYTES / sizeof(float)] = {};
    std::memcpy(bx, x + i, (size_t)(n - i) * sizeof(float));
    std::memcpy(bd, dy + i, (size_t)(n - i) * sizeof(float));
    hn::Store(hn::Mul(hn::Load(d, bd), grad(hn::Load(d, bx))), d, bd);
    std::memcpy(dx + i, bd, (size_t)(n - i) * sizeof(float));
  }
}

void ExpShifted(const float* x, float* e, int64_t n, float shift) {
  const V s = splat(shift);
  MapRun(x, e, n, [s](V v) { return Exp(hn::Sub(v, s)); });
}
void ExpRun(const float* x, float* y, int64_t n) { MapRun(x, y, n, [](V v) { return Exp(v); }); }
void TanhRun(const float* x, float* y, int64_t n) { MapRun(x, y, n, [](V v) { return Tanh(v); }); }
void SigmoidRun(const float* x, float* y, int64_t n) { MapRun(x, y, n, [](V v) { return Sigmoid(v); }); }
void SiluRun(const float* x, float* y, int64_t n) {
  MapRun(x, y, n, [](V v) { return silu_from_(Lanes{v}, Lanes{Exp(hn::Neg(v))}).v; });
}
void GeluErfRun(const float* x, float* y, int64_t n) { MapRun(x, y, n, [](V v) { return hn::Mul(v, GeluCdf(v)); }); }
void GeluTanhRun(const float* x, float* y, int64_t n) {
  MapRun(x, y, n, [](V v) { return gelu_tanh_from_(Lanes{v}, Lanes{Tanh(gelu_tanh_inner_(Lanes{v}).v)}).v; });
}

void SiluGradRun(const float* x, const float* dy, float* dx, int64_t n) {
  GradRun(x, dy, dx, n, [](V v) { return silu_grad_from_(Lanes{v}, Lanes{Sigmoid(v)}).v; });
}
void GeluErfGradRun(const float* x, const float* dy, float* dx, int64_t n) {
  GradRun(x, dy, dx, n, [](V v) {
    const V e = Exp(hn::Mul(hn::Mul(splat(-0.5f), v), v));
    return gelu_erf_grad_from_(Lanes{v}, Lanes{GeluCdf(v)}, Lanes{e}).v;
  });
}
void GeluTanhGradRun(const float* x, const float* dy, float* dx, int64_t n) {
  GradRun(x, dy, dx, n, [](V v) { return gelu_tanh_grad_from_(Lanes{v}, Lanes{Tanh(gelu_tanh_inner_(Lanes{v}).v)}).v; });
}

// Dropout with kx/philox.h's words. Elements before the first whole block and after the last go
// one by one; whole blocks go a vector of block counters at a time, one block per 64-bit lane (the
// 32 x 32 -> 64-bit products of Philox's rounds are MulEven of the lanes' low halves), and their
// four words per block are then applied in element order.
void DropoutRun(const float* x, float* y, int64_t n, uint64_t seed, uint64_t offset, float p, float scale) {
  int64_t i = 0;
  const auto one = [&](int64_t k) {
    const uint64_t e = offset + (uint64_t)k;
    y[k] = dropout_element(x[k], philox_uniform(philox_block(seed, e >> 2).v[e & 3]), p, scale);
  };
  for (; i < n && ((offset + (uint64_t)i) & 3) != 0; ++i) one(i);
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint64_t> d64;
  const hn::Repartition<uint32_t, decltype(d64)> d32;
  using V64 = hn::Vec<decltype(d64)>;
  const int64_t lanes = (int64_t)hn::Lanes(d64);
  const V64 low32 = hn::Set(d64, 0xFFFFFFFFull);
  const auto m0 = hn::BitCast(d32, hn::Set(d64, (uint64_t)kPhiloxM0));
  const auto m1 = hn::BitCast(d32, hn::Set(d64, (uint64_t)kPhiloxM1));
  HWY_ALIGN uint64_t words[4][HWY_MAX_BYTES / sizeof(uint64_t)];
  for (; n - i >= 4 * lanes; i += 4 * lanes) {
    const V64 block = hn::Add(hn::Set(d64, (offset + (uint64_t)i) >> 2), hn::Iota(d64, 0));
    V64 c0 = hn::And(block, low32), c1 = hn::ShiftRight<32>(block), c2 = hn::Zero(d64), c3 = hn::Zero(d64);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      if (r > 0) {
        k0 += kPhiloxW0;
        k1 += kPhiloxW1;
      }
      const V64 p0 = hn::MulEven(hn::BitCast(d32, c0), m0);  // M0 c0: hi0, lo0
      const V64 p1 = hn::MulEven(hn::BitCast(d32, c2), m1);  // M1 c2: hi1, lo1
      const V64 next0 = hn::Xor(hn::Xor(hn::ShiftRight<32>(p1), c1), hn::Set(d64, (uint64_t)k0));
      const V64 next2 = hn::Xor(hn::Xor(hn::ShiftRight<32>(p0), c3), hn::Set(d64, (uint64_t)k1));
      c1 = hn::And(p1, low32);
      c3 = hn::And(p0, low32);
      c0 = next0;
      c2 = next2;
    }
    hn::Store(c0, d64, words[0]);
    hn::Store(c1, d64, words[1]);
    hn::Store(c2, d64, words[2]);
    hn::Store(c3, d64, words[3]);
    for (int64_t l = 0; l < lanes; ++l) {
      for (int w = 0; w < 4; ++w) {
        const int64_t k = i + 4 * l + w;
        y[k] = dropout_element(x[k], philox_uniform((uint32_t)words[w][l]), p, scale);
      }
    }
  }
#endif
  for (; i < n; ++i) one(i);
}

// The float16 rows: F16C's conversions (round to nearest even) on the targets that have them; a
// vector holding a NaN, and the other targets, take the scalar conversions of kx/dtype.h.
void WidenHalf(const half_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET <= HWY_AVX2
  const D d;
  const hn::Rebind<hwy::float16_t, D> dh;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(src + i)));
    if (hn::AllFalse(d, hn::IsNaN(v))) {
      hn::StoreU(v, d, dst + i);
    } else {
      for (int64_t k = i; k < i + lanes; ++k) dst[k] = half_to_float(src[k].bits);
    }
  }
#endif
  for (; i < n; ++i) dst[i] = half_to_float(src[i].bits);
}

void NarrowHalf(const float* src, half_t* dst, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET <= HWY_AVX2
  const D d;
  const hn::Rebind<hwy::float16_t, D> dh;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, src + i);
    if (hn::AllFalse(d, hn::IsNaN(v))) {
      hn::StoreU(hn::DemoteTo(dh, v), dh, reinterpret_cast<hwy::float16_t*>(dst + i));
    } else {
      for (int64_t k = i; k < i + lanes; ++k) dst[k].bits = float_to_half(src[k]);
    }
  }
#endif
  for (; i < n; ++i) dst[i].bits = float_to_half(src[i]);
}

int64_t Target() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace simd_targets
}  // namespace kx
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kx {
namespace simd_targets {
HWY_EXPORT(ExpShifted);
HWY_EXPORT(ExpRun);
HWY_EXPORT(TanhRun);
HWY_EXPORT(SigmoidRun);
HWY_EXPORT(SiluRun);
HWY_EXPORT(GeluErfRun);
HWY_EXPORT(GeluTanhRun);
HWY_EXPORT(SiluGradRun);
HWY_EXPORT(GeluErfGradRun);
HWY_EXPORT(GeluTanhGradRun);
HWY_EXPORT(DropoutRun);
HWY_EXPORT(WidenHalf);
HWY_EXPORT(NarrowHalf);
HWY_EXPORT(Target);
}  // namespace simd_targets

namespace simd {
using namespace simd_targets;

void exp_shifted(const float* x, float* e, int64_t n, float shift) { HWY_DYNAMIC_DISPATCH(ExpShifted)(x, e, n, shift); }
void exp(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(ExpRun)(x, y, n); }
void tanh(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(TanhRun)(x, y, n); }
void sigmoid(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(SigmoidRun)(x, y, n); }
void silu(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(SiluRun)(x, y, n); }
void gelu_erf(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(GeluErfRun)(x, y, n); }
void gelu_tanh(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(GeluTanhRun)(x, y, n); }
void silu_grad(const float* x, const float* dy, float* dx, int64_t n) { HWY_DYNAMIC_DISPATCH(SiluGradRun)(x, dy, dx, n); }
void gelu_erf_grad(const float* x, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluErfGradRun)(x, dy, dx, n);
}
void gelu_tanh_grad(const float* x, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluTanhGradRun)(x, dy, dx, n);
}
void dropout(const float* x, float* y, int64_t n, uint64_t seed, uint64_t offset, float p, float scale) {
  HWY_DYNAMIC_DISPATCH(DropoutRun)(x, y, n, seed, offset, p, scale);
}
void widen_half(const half_t* src, float* dst, int64_t n) { HWY_DYNAMIC_DISPATCH(WidenHalf)(src, dst, n); }
void narrow_half(const float* src, half_t* dst, int64_t n) { HWY_DYNAMIC_DISPATCH(NarrowHalf)(src, dst, n); }
const char* target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(Target)()); }

}  // namespace simd
}  // namespace kx
#endif  // HWY_ONCE
