// The row runs of kx/simd.h: the row reductions (in kx/reduce.h's lane order), the softmax rows
// (kx/softmax_formulas.inc) and the norm rows (ops/norm/formulas.inc), written once with Google
// Highway and compiled for every x86 target as runs.cpp is. A call takes a whole row: the softmax
// and norm rows make their two or three passes over a row still in cache within one dispatched call.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kx/reduce.h"
#include "kx/simd.h"
#include "ops/norm/math.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd/rows.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "cpu/simd/lanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kx {
namespace simd_targets {
namespace HWY_NAMESPACE {

#include "kx/softmax_formulas.inc"
#include "ops/norm/formulas.inc"

// lane_sum's step of a plain sum.
struct AddTerm {
  HWY_INLINE V operator()(V acc, V x) const { return hn::Add(acc, x); }
};

float BlockSumRun(const float* x, int64_t n) { return lane_sum(n, AddTerm(), x); }

float BlockDotRun(const float* a, const float* b, int64_t n) {
  return lane_sum(n, [](V acc, V va, V vb) { return hn::MulAdd(va, vb, acc); }, a, b);
}

// Σ over a row of step's terms: lane sums of kSumBlock blocks combined pairwise.
template <class Step, class... P>
HWY_INLINE float pairwise_row_sum(int64_t n, Step step, const P*... p) {
  PairwiseSum sum;
  for (int64_t i = 0; i < n; i += kSumBlock) sum.add(lane_sum(n - i < kSumBlock ? n - i : kSumBlock, step, (p + i)...));
  return sum.result();
}

float RowSumRun(const float* x, int64_t n) {
  return n <= kSumBlock ? lane_sum(n, AddTerm(), x) : pairwise_row_sum(n, AddTerm(), x);
}

// The max and a "saw a NaN" flag as vector folds (the order of a max does not change it); the last
// partial vector is padded with -inf.
float RowMaxRun(const float* x, int64_t n) {
  const D d;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  V m0 = splat(-INFINITY), m1 = m0;  // two chains of max: the order does not matter
  auto nan = hn::FirstN(d, 0);
  const auto fold = [&](V& m, V v) {
    m = hn::Max(m, v);
    nan = hn::Or(nan, hn::IsNaN(v));
  };
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    fold(m0, hn::LoadU(d, x + i));
    fold(m1, hn::LoadU(d, x + i + lanes));
  }
  for (; i + lanes <= n; i += lanes) fold(m0, hn::LoadU(d, x + i));
  HWY_ALIGN float buf[kMaxFloatLanes];
  if (i < n) {
    for (float& b : buf) b = -INFINITY;
    std::memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
    fold(m1, hn::Load(d, buf));
  }
  if (!hn::AllFalse(d, nan)) return NAN;
  hn::Store(hn::Max(m0, m1), d, buf);
  float r = -INFINITY;
  for (int64_t k = 0; k < lanes; ++k) r = buf[k] > r ? buf[k] : r;
  return r;
}

// Each kSumBlock block's exponentials, then their lane sum, combined pairwise.
float SumExpShiftedRun(const float* x, float* y, int64_t n, float m) {
  PairwiseSum sum;
  HWY_ALIGN float buf[kSumBlock];
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = n - i < kSumBlock ? n - i : kSumBlock;
    float* e = y ? y + i : buf;
    exp_shifted(x + i, e, len, m);
    sum.add(lane_sum(len, AddTerm(), e));
  }
  return sum.result();
}

// y = f(y) in place over a row, f on lanes.
template <class F>
HWY_INLINE void map_in_place(float* y, int64_t n, F f) {
  const D d;
  for_each_group(n, (int64_t)hn::Lanes(d), [&](float* ys) { hn::StoreU(f(Lanes{hn::LoadU(d, ys)}).v, d, ys); }, y);
}

void SoftmaxRowRun(const float* x, float* y, int64_t n) {
  const float m = RowMaxRun(x, n);
  const float inv = 1.0f / SumExpShiftedRun(x, y, n, m);
  map_in_place(y, n, [inv](Lanes e) { return softmax_from_(e, inv); });
}

void LogSoftmaxRowRun(const float* x, float* y, int64_t n) {
  const D d;
  const float m = RowMaxRun(x, n);
  const float ls = logf(SumExpShiftedRun(x, nullptr, n, m));
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, float* ys) {
    hn::StoreU(log_softmax_elem(Lanes{hn::LoadU(d, xs)}, m, ls).v, d, ys);
  }, x, y);
}

void SoftmaxBackwardRowRun(const float* y, const float* dy, float* dx, int64_t n) {
  const D d;
  const float dot = pairwise_row_sum(n, [](V acc, V vy, V vdy) { return hn::Add(acc, hn::Mul(vdy, vy)); }, y, dy);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* ys, const float* dys, float* dxs) {
    hn::StoreU(softmax_backward_elem(Lanes{hn::LoadU(d, ys)}, Lanes{hn::LoadU(d, dys)}, dot).v, d, dxs);
  }, y, dy, dx);
}

void LogSoftmaxBackwardRowRun(const float* y, const float* dy, float* dx, int64_t n) {
  const D d;
  const float s = RowSumRun(dy, n);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* ys, const float* dys, float* dxs) {
    const Lanes e{Exp(hn::LoadU(d, ys))};
    hn::StoreU(log_softmax_backward_from_(Lanes{hn::LoadU(d, dys)}, e, s).v, d, dxs);
  }, y, dy, dx);
}

HWY_INLINE bool finite_max(float m) { return m > -INFINITY && m < INFINITY; }

float LogsumexpRowRun(const float* x, int64_t n) {
  const float m = RowMaxRun(x, n);
  return finite_max(m) ? m + logf(SumExpShiftedRun(x, nullptr, n, m)) : m;
}

float CrossEntropyRowGradRun(const float* x, float* dx, int64_t n, int64_t label, float scale) {
  const float m = RowMaxRun(x, n);
  const float s = SumExpShiftedRun(x, dx, n, m);
  const float k = scale / s;
  map_in_place(dx, n, [k](Lanes e) { return softmax_from_(e, k); });
  dx[label] -= scale;
  const float lse = finite_max(m) ? m + logf(s) : m;
  return lse - x[label];
}

// ---- norm rows --------------------------------------------------------------------------------

void LayerNormRowRun(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps,
                     float* mean_out, float* rstd_out) {
  const D d;
  if (n <= 0) {
    *mean_out = 0.0f;
    *rstd_out = norm_rstd(0.0f, eps);
    return;
  }
  const float mean = BlockSumRun(x, n) / (float)n;
  const V vmean = splat(mean);
  const float var = lane_sum(n, [vmean](V acc, V v) {
    const V dev = hn::Sub(v, vmean);
    return hn::MulAdd(dev, dev, acc);
  }, x) / (float)n;
  const float rstd = norm_rstd(var, eps);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, const float* gs, const float* bs, float* ys) {
    hn::StoreU(layer_norm_elem(Lanes{hn::LoadU(d, xs)}, mean, rstd, Lanes{hn::LoadU(d, gs)}, Lanes{hn::LoadU(d, bs)}).v,
               d, ys);
  }, x, gamma, beta, y);
  *mean_out = mean;
  *rstd_out = rstd;
}

// x̂ is recomputed by the same instructions in both passes rather than stored.
void LayerNormRowBackwardRun(const float* dy, const float* x, const float* gamma, float mean, float rstd, float* dx,
                             float* dgamma, float* dbeta, int64_t n) {
  const D d;
  if (n <= 0) return;
  const float inv_n = 1.0f / (float)n;
  const float mean_g = BlockDotRun(dy, gamma, n) * inv_n;
  const float mean_gx = lane_sum(n, [mean, rstd](V acc, V vdy, V vg, V vx) {
    return hn::MulAdd(hn::Mul(vdy, vg), layer_norm_xhat(Lanes{vx}, mean, rstd).v, acc);
  }, dy, gamma, x) * inv_n;
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* dys, const float* xs, const float* gs, float* dxs,
                                                float* dgs, float* dbs) {
    const V vdy = hn::LoadU(d, dys);
    const Lanes xhat = layer_norm_xhat(Lanes{hn::LoadU(d, xs)}, mean, rstd);
    const V vdx = layer_norm_dx_elem(Lanes{vdy}, Lanes{hn::LoadU(d, gs)}, xhat, rstd, mean_g, mean_gx).v;
    hn::StoreU(hn::MulAdd(vdy, xhat.v, hn::LoadU(d, dgs)), d, dgs);
    hn::StoreU(hn::Add(hn::LoadU(d, dbs), vdy), d, dbs);
    hn::StoreU(vdx, d, dxs);
  }, dy, x, gamma, dx, dgamma, dbeta);
}

float RmsNormRowRun(const float* x, const float* gamma, float* y, int64_t n, float eps) {
  const D d;
  if (n <= 0) return norm_rstd(0.0f, eps);
  const float rstd = norm_rstd(lane_sum(n, [](V acc, V v) { return hn::MulAdd(v, v, acc); }, x) / (float)n, eps);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, const float* gs, float* ys) {
    hn::StoreU(rms_norm_elem(Lanes{hn::LoadU(d, xs)}, rstd, Lanes{hn::LoadU(d, gs)}).v, d, ys);
  }, x, gamma, y);
  return rstd;
}

void RmsNormRowBackwardRun(const float* dy, const float* x, const float* gamma, float rstd, float* dx, float* dgamma,
                           int64_t n) {
  const D d;
  if (n <= 0) return;
  const float mean_gx =
      lane_sum(n, [](V acc, V vdy, V vg, V vx) { return hn::MulAdd(hn::Mul(vdy, vg), vx, acc); }, dy, gamma, x) /
      (float)n;
  const float c = rms_norm_dx_coef(rstd, mean_gx);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* dys, const float* xs, const float* gs, float* dxs,
                                                float* dgs) {
    const Lanes vdy{hn::LoadU(d, dys)}, vx{hn::LoadU(d, xs)};
    const V vdx = rms_norm_dx_elem(vdy, Lanes{hn::LoadU(d, gs)}, vx, rstd, c).v;
    hn::StoreU(hn::Add(hn::LoadU(d, dgs), rms_norm_dgamma_elem(vdy, vx, rstd).v), d, dgs);
    hn::StoreU(vdx, d, dxs);
  }, dy, x, gamma, dx, dgamma);
}

}  // namespace HWY_NAMESPACE
}  // namespace simd_targets
}  // namespace kx
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kx {
namespace simd_targets {
HWY_EXPORT(BlockSumRun);
HWY_EXPORT(BlockDotRun);
HWY_EXPORT(RowSumRun);
HWY_EXPORT(RowMaxRun);
HWY_EXPORT(SumExpShiftedRun);
HWY_EXPORT(SoftmaxRowRun);
HWY_EXPORT(LogSoftmaxRowRun);
HWY_EXPORT(SoftmaxBackwardRowRun);
HWY_EXPORT(LogSoftmaxBackwardRowRun);
HWY_EXPORT(LogsumexpRowRun);
HWY_EXPORT(CrossEntropyRowGradRun);
HWY_EXPORT(LayerNormRowRun);
HWY_EXPORT(LayerNormRowBackwardRun);
HWY_EXPORT(RmsNormRowRun);
HWY_EXPORT(RmsNormRowBackwardRun);
}  // namespace simd_targets

namespace simd {
using namespace simd_targets;

float block_sum(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(BlockSumRun)(x, n); }
float block_dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(BlockDotRun)(a, b, n); }
float row_sum(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(RowSumRun)(x, n); }
float row_max(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(RowMaxRun)(x, n); }
float sum_exp_shifted(const float* x, float* y, int64_t n, float m) {
  return HWY_DYNAMIC_DISPATCH(SumExpShiftedRun)(x, y, n, m);
}
void softmax_row(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxRowRun)(x, y, n); }
void log_softmax_row(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(LogSoftmaxRowRun)(x, y, n); }
void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SoftmaxBackwardRowRun)(y, dy, dx, n);
}
void log_softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(LogSoftmaxBackwardRowRun)(y, dy, dx, n);
}
float logsumexp_row(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(LogsumexpRowRun)(x, n); }
float cross_entropy_row_grad(const float* x, float* dx, int64_t n, int64_t label, float scale) {
  return HWY_DYNAMIC_DISPATCH(CrossEntropyRowGradRun)(x, dx, n, label, scale);
}
void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps,
                    float* mean, float* rstd) {
  HWY_DYNAMIC_DISPATCH(LayerNormRowRun)(x, gamma, beta, y, n, eps, mean, rstd);
}
void layer_norm_row_backward(const float* dy, const float* x, const float* gamma, float mean, float rstd, float* dx,
                             float* dgamma, float* dbeta, int64_t n) {
  HWY_DYNAMIC_DISPATCH(LayerNormRowBackwardRun)(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, n);
}
float rms_norm_row(const float* x, const float* gamma, float* y, int64_t n, float eps) {
  return HWY_DYNAMIC_DISPATCH(RmsNormRowRun)(x, gamma, y, n, eps);
}
void rms_norm_row_backward(const float* dy, const float* x, const float* gamma, float rstd, float* dx, float* dgamma,
                           int64_t n) {
  HWY_DYNAMIC_DISPATCH(RmsNormRowBackwardRun)(dy, x, gamma, rstd, dx, dgamma, n);
}

}  // namespace simd
}  // namespace kx
#endif  // HWY_ONCE
