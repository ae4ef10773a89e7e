// What every file of vector runs (native/cpu/simd/*.cpp) needs inside each Highway target: the lane
// types that give vectors the arithmetic of float and double (the lane type of the formula
// templates shared with the scalar and CUDA code: kx/math_formulas.inc and the formulas.inc of the
// op families), the exponential, and the two loop shapes of the runs. Included after
// hwy/highway.h by each runs file, which foreach_target.h compiles once per target: the toggle
// guard below (Highway's -inl.h convention) lets this file in once per target.
#if defined(KX_CPU_SIMD_LANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KX_CPU_SIMD_LANES_INL_H_
#undef KX_CPU_SIMD_LANES_INL_H_
#else
#define KX_CPU_SIMD_LANES_INL_H_
#endif

#include <cstdint>
#include <cstring>
#include <utility>

#include "hwy/highway.h"
#include "kx/math.h"
#include "kx/reduce.h"

HWY_BEFORE_NAMESPACE();
namespace kx {
namespace simd_targets {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using DD = hn::ScalableTag<double>;
using VD = hn::Vec<DD>;
using DF = hn::Rebind<float, DD>;  // the floats of one double vector (half its width)

HWY_INLINE V splat(float c) { return hn::Set(D(), c); }

// A vector with the arithmetic of its lane type (float or double), against plain numbers too: the
// lane type of the shared formula templates. A number converts to the lane type first.
template <class Vec> struct LanesOf {
  Vec v;
};
using Lanes = LanesOf<V>;
using LanesD = LanesOf<VD>;
template <class Vec> using LaneT = hn::TFromV<Vec>;
template <class Vec> HWY_INLINE LanesOf<Vec> lanes_of(LaneT<Vec> c) { return {hn::Set(hn::DFromV<Vec>(), c)}; }

template <class Vec> HWY_INLINE LanesOf<Vec> operator+(LanesOf<Vec> a, LanesOf<Vec> b) { return {hn::Add(a.v, b.v)}; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator-(LanesOf<Vec> a, LanesOf<Vec> b) { return {hn::Sub(a.v, b.v)}; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator*(LanesOf<Vec> a, LanesOf<Vec> b) { return {hn::Mul(a.v, b.v)}; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator/(LanesOf<Vec> a, LanesOf<Vec> b) { return {hn::Div(a.v, b.v)}; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator+(LanesOf<Vec> a, LaneT<Vec> b) { return a + lanes_of<Vec>(b); }
template <class Vec> HWY_INLINE LanesOf<Vec> operator-(LanesOf<Vec> a, LaneT<Vec> b) { return a - lanes_of<Vec>(b); }
template <class Vec> HWY_INLINE LanesOf<Vec> operator*(LanesOf<Vec> a, LaneT<Vec> b) { return a * lanes_of<Vec>(b); }
template <class Vec> HWY_INLINE LanesOf<Vec> operator+(LaneT<Vec> a, LanesOf<Vec> b) { return lanes_of<Vec>(a) + b; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator-(LaneT<Vec> a, LanesOf<Vec> b) { return lanes_of<Vec>(a) - b; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator*(LaneT<Vec> a, LanesOf<Vec> b) { return lanes_of<Vec>(a) * b; }
template <class Vec> HWY_INLINE LanesOf<Vec> operator/(LaneT<Vec> a, LanesOf<Vec> b) { return lanes_of<Vec>(a) / b; }
template <class Vec> HWY_INLINE LanesOf<Vec>& operator*=(LanesOf<Vec>& a, LanesOf<Vec> b) { return a = a * b; }
template <class Vec> HWY_INLINE LanesOf<Vec>& operator-=(LanesOf<Vec>& a, LanesOf<Vec> b) { return a = a - b; }
template <class Vec> HWY_INLINE LanesOf<Vec> sqrt(LanesOf<Vec> a) { return {hn::Sqrt(a.v)}; }

#include "kx/math_formulas.inc"

// kx::exp_fast on lanes, the same steps: clamp (NaN kept: the comparisons are false), n = round(x /
// ln2) by adding 1.5 * 2^23 (whose low mantissa bits are then n as an integer: no conversion
// instruction, and a NaN's garbage n meets a NaN polynomial), the polynomial, and 2^n as two
// factors so that subnormal results round once.
HWY_INLINE V Exp(V x) {
  // x86's min/max return their second operand when either is NaN, so x's NaN is kept; the scalar
  // target's return the other one, so there the NaN is put back.
  V xc = hn::Max(splat(kExpMin), hn::Min(splat(kExpMax), x));
#if HWY_TARGET == HWY_SCALAR
  xc = hn::IfThenElse(hn::IsNaN(x), x, xc);
#endif
  const V shifted = hn::Add(hn::Mul(xc, splat(kExpLog2e)), splat(kExpShifter));
  const V n = hn::Sub(shifted, splat(kExpShifter));
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

// ---- the loop shapes ----------------------------------------------------------------------------

constexpr size_t kMaxFloatLanes = HWY_MAX_BYTES / sizeof(float);

HWY_INLINE void copy_back(const float*, const float*, int64_t) {}
HWY_INLINE void copy_back(float* dst, const float* buf, int64_t n) { std::memcpy(dst, buf, (size_t)n * sizeof(float)); }

template <class Body, class... P, size_t... K>
HWY_INLINE void tail_through_buffers(int64_t rest, Body& body, std::index_sequence<K...>, P*... p) {
  HWY_ALIGN float buf[sizeof...(P)][kMaxFloatLanes] = {};
  (std::memcpy(buf[K], p, (size_t)rest * sizeof(float)), ...);
  body(static_cast<P*>(buf[K])...);
  (copy_back(p, buf[K], rest), ...);
}

// An elementwise run over float arrays: body(p + i...) for every whole group of `lanes` elements,
// then once for the last partial group through zero-padded buffers (the outputs, the pointers to
// non-const, copied back), so that every element takes the same instructions wherever it sits and
// a result does not depend on how a tensor was split into calls (the thread count).
template <class Body, class... P>
HWY_INLINE void for_each_group(int64_t n, int64_t lanes, Body body, P*... p) {
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) body((p + i)...);
  if (i < n) tail_through_buffers(n - i, body, std::index_sequence_for<P...>(), (p + i)...);
}

// e = exp(x - shift) over n elements (e may be x): the exponentials of the softmax rows.
HWY_INLINE void exp_shifted(const float* x, float* e, int64_t n, float shift) {
  const D d;
  const V s = splat(shift);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, float* es) {
    hn::StoreU(Exp(hn::Sub(hn::LoadU(d, xs), s)), d, es);
  }, x, e);
}

// The accumulators' halving fold of kx/reduce.h: lane k adds lane k + w for w = half the lanes,
// then half that, down to one. Across vectors first (lane k of vector j + kVecs/2 is lane k + w),
// then inside the last one by its halves, so each target folds in the same tree as any other.
template <class DV>
HWY_INLINE hn::TFromD<DV> fold_vector(DV, hn::Vec<DV> v) {
#if HWY_TARGET == HWY_SCALAR
  return hn::GetLane(v);  // one lane
#else
  if constexpr (hn::MaxLanes(DV()) == 1) {
    return hn::GetLane(v);
  } else {
    const hn::Half<DV> dh;
    return fold_vector(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
#endif
}
template <class Vec, int kVecs>
HWY_INLINE hn::TFromV<Vec> fold_halving(Vec (&acc)[kVecs]) {
  for (int w = kVecs / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = hn::Add(acc[j], acc[j + w]);
  return fold_vector(hn::DFromV<Vec>(), acc[0]);
}

template <class Step, class... P, size_t... K>
HWY_INLINE float lane_sum_of(int64_t n, Step& step, std::index_sequence<K...>, const P*... p) {
  const D d;
  constexpr int64_t kLanes = (int64_t)hn::MaxLanes(D());
  constexpr int kVecs = (int)(kReduceLanes / kLanes);
  static_assert(kReduceLanes % kLanes == 0, "kReduceLanes must hold whole vectors");
  V acc[kVecs];
  for (V& a : acc) a = hn::Zero(d);
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int j = 0; j < kVecs; ++j) acc[j] = step(acc[j], hn::LoadU(d, p + i + j * kLanes)...);
  if (i < n) {
    const int64_t rest = n - i;
    HWY_ALIGN float buf[sizeof...(P)][kReduceLanes] = {};
    (std::memcpy(buf[K], p + i, (size_t)rest * sizeof(float)), ...);
    for (int j = 0; j < kVecs && j * kLanes < rest; ++j) {
      const auto live = hn::FirstN(d, (size_t)(rest - j * kLanes));
      acc[j] = hn::IfThenElse(live, step(acc[j], hn::Load(d, buf[K] + j * kLanes)...), acc[j]);
    }
  }
  return fold_halving(acc);
}

// A sum over a row in kx/reduce.h's lane order: element i adds into accumulator i mod kReduceLanes
// (kReduceLanes / Lanes(d) vectors of them), a last partial group into the first accumulators only,
// and the accumulators fold by halving (fold_halving). step(acc, x...) returns acc plus the terms of the
// vectors x, loaded at the same position of each row. The same order on every target, so a row's
// sum depends only on its values, never on where it sits or on the thread count.
template <class Step, class... P>
HWY_INLINE float lane_sum(int64_t n, Step step, const P*... p) {
  return lane_sum_of(n, step, std::index_sequence_for<P...>(), p...);
}

}  // namespace HWY_NAMESPACE
}  // namespace simd_targets
}  // namespace kx
HWY_AFTER_NAMESPACE();

#endif  // KX_CPU_SIMD_LANES_INL_H_ toggle
