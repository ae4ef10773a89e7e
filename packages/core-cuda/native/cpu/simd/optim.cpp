// The optimizer runs of kx/simd.h: the element math of ops/optim/formulas.inc on vectors of doubles
// (the CUDA kernels run the same templates with A = double), written once with Google Highway and
// compiled for every x86 target as runs.cpp is. Float32 arrays are widened to double a vector at a
// time and each result is rounded once to float32, as the scalar (float)double casts would.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kx/simd.h"
#include "ops/optim/math.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd/optim.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "cpu/simd/lanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kx {
namespace simd_targets {
namespace HWY_NAMESPACE {

// sign with sign(0) = 0 and NaN giving 0, as kx::sign0: the select of this form.
HWY_INLINE LanesD sign0(LanesD x) {
  const DD dd;
  const VD zero = hn::Zero(dd);
  return {hn::Sub(hn::IfThenElseZero(hn::Gt(x.v, zero), hn::Set(dd, 1.0)),
                  hn::IfThenElseZero(hn::Lt(x.v, zero), hn::Set(dd, 1.0)))};
}

#include "ops/optim/formulas.inc"

HWY_INLINE LanesD load_wide(const float* p) { return {hn::PromoteTo(DD(), hn::LoadU(DF(), p))}; }
HWY_INLINE void store_narrow(LanesD x, float* p) { hn::StoreU(hn::DemoteTo(DF(), x.v), DF(), p); }
HWY_INLINE LanesD wide(double c) { return {hn::Set(DD(), c)}; }
HWY_INLINE int64_t wide_lanes() { return (int64_t)hn::Lanes(DD()); }

// Σ x² in double over kSumSqLanes accumulators: element i adds into accumulator i mod kSumSqLanes
// (a partial last group into the first ones), then they fold by halving. Enough accumulators that
// the adds of one are not waiting on each other on AVX-512 (two vectors of eight) and AVX2 (four).
constexpr int64_t kSumSqLanes = 16;

double SumSqRun(const float* x, int64_t n) {
  const DD dd;
  constexpr int64_t kLanes = (int64_t)hn::MaxLanes(DD());
  constexpr int kVecs = (int)(kSumSqLanes / kLanes);
  static_assert(kSumSqLanes % kLanes == 0, "kSumSqLanes must hold whole vectors");
  VD acc[kVecs];
  for (VD& a : acc) a = hn::Zero(dd);
  const auto step = [](VD a, const float* p) {
    const VD v = load_wide(p).v;
    return hn::MulAdd(v, v, a);
  };
  int64_t i = 0;
  for (; i + kSumSqLanes <= n; i += kSumSqLanes)
    for (int j = 0; j < kVecs; ++j) acc[j] = step(acc[j], x + i + j * kLanes);
  if (i < n) {
    const int64_t rest = n - i;
    HWY_ALIGN float buf[kSumSqLanes] = {};
    std::memcpy(buf, x + i, (size_t)rest * sizeof(float));
    for (int j = 0; j < kVecs && j * kLanes < rest; ++j)
      acc[j] = hn::IfThenElse(hn::FirstN(dd, (size_t)(rest - j * kLanes)), step(acc[j], buf + j * kLanes), acc[j]);
  }
  return fold_halving(acc);
}

bool AllFiniteRun(const float* x, int64_t n) {
  const D d;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  auto bad = hn::FirstN(d, 0);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) bad = hn::Or(bad, hn::Not(hn::IsFinite(hn::LoadU(d, x + i))));
  for (; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return hn::AllFalse(d, bad);
}

void TigerMomentumRun(float* m, const float* g, int64_t n, double gscale, double b1, double b2) {
  for_each_group(n, wide_lanes(), [&](float* ms, const float* gs) {
    store_narrow(tiger_momentum(load_wide(ms), wide(gscale) * load_wide(gs), wide(b1), wide(b2)), ms);
  }, m, g);
}

// The sign step reads the momentum as stored (rounded to float32), as the scalar loop did.
void TigerStepRun(float* theta, float* m, const float* g, int64_t n, double gscale, double b1, double b2, double eta,
                  double wd) {
  for_each_group(n, wide_lanes(), [&](float* ts, float* ms, const float* gs) {
    const LanesD mi = tiger_momentum(load_wide(ms), wide(gscale) * load_wide(gs), wide(b1), wide(b2));
    const auto mf = hn::DemoteTo(DF(), mi.v);
    hn::StoreU(mf, DF(), ms);
    store_narrow(sign_step(load_wide(ts), LanesD{hn::PromoteTo(DD(), mf)}, wide(eta), wide(wd)), ts);
  }, theta, m, g);
}

void ShrinkTowardRun(float* theta, int64_t n, double centre, double ratio) {
  for_each_group(n, wide_lanes(), [&](float* ts) {
    store_narrow(shrink_toward(load_wide(ts), wide(centre), wide(ratio)), ts);
  }, theta);
}

void LionRun(float* theta, float* m, const float* g, int64_t n, double gscale, double lr, double beta1, double beta2,
             double wd) {
  for_each_group(n, wide_lanes(), [&](float* ts, float* ms, const float* gs) {
    LanesD t = load_wide(ts), mi = load_wide(ms);
    lion_elem(t, mi, wide(gscale) * load_wide(gs), wide(lr), wide(beta1), wide(beta2), wide(wd));
    store_narrow(t, ts);
    store_narrow(mi, ms);
  }, theta, m, g);
}

// (The element templates are called by their namespace: the coefficient struct's own namespace, kx,
// holds the double instantiation of the same templates.)
void AdamWRun(float* theta, float* m, float* v, const float* g, int64_t n, double gscale, const AdamWCoef<double>& c) {
  const AdamWCoef<LanesD> cv{wide(c.decay),     wide(c.beta1),    wide(c.beta2),
                             wide(c.step_size), wide(c.bc2_sqrt), wide(c.eps)};
  for_each_group(n, wide_lanes(), [&](float* ts, float* ms, float* vs, const float* gs) {
    LanesD t = load_wide(ts), mi = load_wide(ms), vi = load_wide(vs);
    HWY_NAMESPACE::adamw_elem(t, mi, vi, wide(gscale) * load_wide(gs), cv);
    store_narrow(t, ts);
    store_narrow(mi, ms);
    store_narrow(vi, vs);
  }, theta, m, v, g);
}

template <bool kFirst, bool kNesterov>
HWY_INLINE void sgd_momentum_loop(float* theta, float* buf, const float* g, int64_t n, double gscale,
                                  const SgdCoef<LanesD>& c) {
  for_each_group(n, wide_lanes(), [&](float* ts, float* bs, const float* gs) {
    LanesD t = load_wide(ts), b = kFirst ? wide(0.0) : load_wide(bs);
    HWY_NAMESPACE::sgd_elem<true, kFirst, kNesterov>(t, b, wide(gscale) * load_wide(gs), c);
    store_narrow(t, ts);
    store_narrow(b, bs);
  }, theta, buf, g);
}

void SgdRun(float* theta, float* buf, const float* g, int64_t n, double gscale, const SgdCoef<double>& c, bool first,
            bool nesterov) {
  const SgdCoef<LanesD> cv{wide(c.lr), wide(c.momentum), wide(c.dampening), wide(c.wd)};
  if (c.momentum == 0) {
    for_each_group(n, wide_lanes(), [&](float* ts, const float* gs) {
      LanesD t = load_wide(ts), unused = wide(0.0);
      HWY_NAMESPACE::sgd_elem<false, false, false>(t, unused, wide(gscale) * load_wide(gs), cv);
      store_narrow(t, ts);
    }, theta, g);
  } else if (first && nesterov) {
    sgd_momentum_loop<true, true>(theta, buf, g, n, gscale, cv);
  } else if (first) {
    sgd_momentum_loop<true, false>(theta, buf, g, n, gscale, cv);
  } else if (nesterov) {
    sgd_momentum_loop<false, true>(theta, buf, g, n, gscale, cv);
  } else {
    sgd_momentum_loop<false, false>(theta, buf, g, n, gscale, cv);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace simd_targets
}  // namespace kx
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kx {
namespace simd_targets {
HWY_EXPORT(SumSqRun);
HWY_EXPORT(AllFiniteRun);
HWY_EXPORT(TigerMomentumRun);
HWY_EXPORT(TigerStepRun);
HWY_EXPORT(ShrinkTowardRun);
HWY_EXPORT(LionRun);
HWY_EXPORT(AdamWRun);
HWY_EXPORT(SgdRun);
}  // namespace simd_targets

namespace simd {
using namespace simd_targets;

double sum_sq(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(SumSqRun)(x, n); }
bool all_finite(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(AllFiniteRun)(x, n); }
void tiger_momentum(float* m, const float* g, int64_t n, double gscale, double b1, double b2) {
  HWY_DYNAMIC_DISPATCH(TigerMomentumRun)(m, g, n, gscale, b1, b2);
}
void tiger_step(float* theta, float* m, const float* g, int64_t n, double gscale, double b1, double b2, double eta,
                double wd) {
  HWY_DYNAMIC_DISPATCH(TigerStepRun)(theta, m, g, n, gscale, b1, b2, eta, wd);
}
void shrink_toward(float* theta, int64_t n, double centre, double ratio) {
  HWY_DYNAMIC_DISPATCH(ShrinkTowardRun)(theta, n, centre, ratio);
}
void lion(float* theta, float* m, const float* g, int64_t n, double gscale, double lr, double beta1, double beta2,
          double wd) {
  HWY_DYNAMIC_DISPATCH(LionRun)(theta, m, g, n, gscale, lr, beta1, beta2, wd);
}
void adamw(float* theta, float* m, float* v, const float* g, int64_t n, double gscale, const AdamWCoef<double>& c) {
  HWY_DYNAMIC_DISPATCH(AdamWRun)(theta, m, v, g, n, gscale, c);
}
void sgd(float* theta, float* momentum_buf, const float* g, int64_t n, double gscale, const SgdCoef<double>& c,
         bool first, bool nesterov) {
  HWY_DYNAMIC_DISPATCH(SgdRun)(theta, momentum_buf, g, n, gscale, c, first, nesterov);
}

}  // namespace simd
}  // namespace kx
#endif  // HWY_ONCE
