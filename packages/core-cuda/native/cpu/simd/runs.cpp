// The elementwise vector runs of kx/simd.h (transcendentals, dropout, 16-bit float conversions,
// binary arithmetic), written once with Google Highway and compiled for every x86 target
// (foreach_target.h includes this file again per target, each time inside that target's namespace
// and instruction set); HWY_DYNAMIC_DISPATCH calls the best target the CPU has and KEXUE_SIMD
// allows (target.cpp). The element formulas are kx/math_formulas.inc, included in each target's
// namespace by lanes-inl.h; what differs from the scalar functions of kx/math.h is only the selects
// and the bit tricks, which each form writes with its own operations.
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

#include "cpu/simd/lanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kx {
namespace simd_targets {
namespace HWY_NAMESPACE {

// kx::tanh_fast on lanes.
HWY_INLINE V Tanh(V x) {
  const V ax = hn::Abs(x);
  const V small = tanh_small_(Lanes{x}, Lanes{hn::Mul(x, x)}).v;
  const V big = tanh_big_(Lanes{Exp(hn::Add(ax, ax))}).v;
  return hn::IfThenElse(hn::Lt(ax, splat(kTanhCut)), small, hn::CopySign(big, x));
}

// kx::gelu_cdf on lanes.
HWY_INLINE V GeluCdf(V x) {
  const Lanes a{hn::Mul(hn::Abs(x), splat(kInvSqrt2))};
  const V e = Exp(hn::Neg(hn::Mul(a.v, a.v)));
  const V erf_a = hn::Abs((1.0f - erf_as_poly_(erf_as_t_(a)) * Lanes{e}).v);
  return gelu_cdf_from_erf_(Lanes{hn::CopySign(erf_a, x)}).v;
}

HWY_INLINE V Sigmoid(V x) { return sigmoid_from_(Lanes{Exp(hn::Neg(x))}).v; }

// y = f(x) over n elements (lanes-inl.h's for_each_group: the last partial vector takes the
// instructions of the whole ones).
template <class F>
HWY_INLINE void MapRun(const float* x, float* y, int64_t n, F f) {
  const D d;
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, float* ys) { hn::StoreU(f(hn::LoadU(d, xs)), d, ys); },
                 x, y);
}

// dx = dy * f'(x) over n elements, as MapRun.
template <class F>
HWY_INLINE void GradRun(const float* x, const float* dy, float* dx, int64_t n, F grad) {
  const D d;
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, const float* dys, float* dxs) {
    hn::StoreU(hn::Mul(hn::LoadU(d, dys), grad(hn::LoadU(d, xs))), d, dxs);
  }, x, dy, dx);
}

void ExpShifted(const float* x, float* e, int64_t n, float shift) { exp_shifted(x, e, n, shift); }
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
    y[k] = dropout_element(x[k], philox_uniform_at(seed, e), p, scale);
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

// bfloat16 is the top half of a float32: widening is a shift, narrowing rounds to nearest even by
// integer arithmetic (float_to_bf16's steps) and writes 0x7fc0 for a NaN. Exact integer steps, so
// the last partial vector can take the scalar conversions.
void WidenBf16(const bfloat16_t* src, float* dst, int64_t n) {
  const D d;
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint16_t, D> d16;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto bits = hn::PromoteTo(du, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(src + i)));
    hn::StoreU(hn::BitCast(d, hn::ShiftLeft<16>(bits)), d, dst + i);
  }
  for (; i < n; ++i) dst[i] = bf16_to_float(src[i].bits);
}

void NarrowBf16(const float* src, bfloat16_t* dst, int64_t n) {
  const D d;
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint16_t, D> d16;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  const auto half_ulp = hn::Set(du, 0x7fffu), one = hn::Set(du, 1u), nan_bits = hn::Set(du, 0x7fc0u);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, src + i);
    const auto u = hn::BitCast(du, v);
    const auto rounded = hn::ShiftRight<16>(hn::Add(u, hn::Add(half_ulp, hn::And(hn::ShiftRight<16>(u), one))));
    const auto bits = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), nan_bits, rounded);
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, bits)), d16, reinterpret_cast<uint16_t*>(dst + i));
  }
  for (; i < n; ++i) dst[i].bits = float_to_bf16(src[i]);
}

// out = op(a, b) with a stride-0 operand held in a vector; two stride-0 operands give one value.
template <class Op>
HWY_INLINE void BinaryOf(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n, Op op) {
  const D d;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  if (sa && sb) {
    for_each_group(n, lanes, [&](const float* as, const float* bs, float* os) {
      hn::StoreU(op(hn::LoadU(d, as), hn::LoadU(d, bs)), d, os);
    }, a, b, out);
  } else if (sa) {
    const V vb = splat(b[0]);
    for_each_group(n, lanes, [&](const float* as, float* os) { hn::StoreU(op(hn::LoadU(d, as), vb), d, os); }, a, out);
  } else if (sb) {
    const V va = splat(a[0]);
    for_each_group(n, lanes, [&](const float* bs, float* os) { hn::StoreU(op(va, hn::LoadU(d, bs)), d, os); }, b, out);
  } else {
    const V v = op(splat(a[0]), splat(b[0]));
    for_each_group(n, lanes, [&](float* os) { hn::StoreU(v, d, os); }, out);
  }
}

void BinaryRun(simd::BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  switch (op) {
    case simd::BinaryOp::Add: return BinaryOf(a, sa, b, sb, out, n, [](V x, V y) { return hn::Add(x, y); });
    case simd::BinaryOp::Sub: return BinaryOf(a, sa, b, sb, out, n, [](V x, V y) { return hn::Sub(x, y); });
    case simd::BinaryOp::Mul: return BinaryOf(a, sa, b, sb, out, n, [](V x, V y) { return hn::Mul(x, y); });
    case simd::BinaryOp::Div: return BinaryOf(a, sa, b, sb, out, n, [](V x, V y) { return hn::Div(x, y); });
  }
}

void MaskFillRun(float* x, const uint8_t* keep, int64_t n, float fill) {
  const D d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  const V f = hn::Set(d, fill);
  int64_t i = 0;
  for (; n - i >= lanes; i += lanes) {
    const auto kept = hn::RebindMask(d, hn::Ne(hn::PromoteTo(di, hn::LoadU(d8, keep + i)), hn::Zero(di)));
    hn::StoreU(hn::IfThenElse(kept, hn::LoadU(d, x + i), f), d, x + i);
  }
  for (; i < n; ++i) x[i] = keep[i] ? x[i] : fill;
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
HWY_EXPORT(WidenBf16);
HWY_EXPORT(NarrowBf16);
HWY_EXPORT(BinaryRun);
HWY_EXPORT(MaskFillRun);
HWY_EXPORT(Target);
}  // namespace simd_targets

namespace simd {
using namespace simd_targets;

void exp_shifted(const float* x, float* e, int64_t n, float shift) { HWY_DYNAMIC_DISPATCH(ExpShifted)(x, e, n, shift); }
void exp(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(ExpRun)(x, y, n); }
void mask_fill(float* x, const uint8_t* keep, int64_t n, float fill) { HWY_DYNAMIC_DISPATCH(MaskFillRun)(x, keep, n, fill); }
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
void widen_bf16(const bfloat16_t* src, float* dst, int64_t n) { HWY_DYNAMIC_DISPATCH(WidenBf16)(src, dst, n); }
void narrow_bf16(const float* src, bfloat16_t* dst, int64_t n) { HWY_DYNAMIC_DISPATCH(NarrowBf16)(src, dst, n); }
void binary(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(BinaryRun)(op, a, sa, b, sb, out, n);
}
const char* target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(Target)()); }

}  // namespace simd
}  // namespace kx
#endif  // HWY_ONCE
