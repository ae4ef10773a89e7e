// The fused groups' superinstructions of kx/simd.h (multiply-add, select, square roots over float32 runs), for
// the block interpreter of ops/fused_group/: compiled per x86 target by Highway like runs.cpp and
// dispatched at run time to the best target the CPU has and KEXUE_SIMD allows.
#include <cstdint>

#include "kx/simd.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd/fused.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "cpu/simd/lanes-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kx {
namespace simd_targets {
namespace HWY_NAMESPACE {

// out = op(a, b, c) with b one number held in a vector when sb == 0 (lanes-inl.h's for_each_group:
// the last partial vector takes the instructions of the whole ones).
template <class Op>
HWY_INLINE void MulAddOf(const float* a, const float* b, int64_t sb, const float* c, float* out, int64_t n, Op op) {
  const D d;
  const int64_t lanes = (int64_t)hn::Lanes(d);
  if (sb) {
    for_each_group(n, lanes, [&](const float* as, const float* bs, const float* cs, float* os) {
      hn::StoreU(op(hn::LoadU(d, as), hn::LoadU(d, bs), hn::LoadU(d, cs)), d, os);
    }, a, b, c, out);
  } else {
    const V vb = splat(b[0]);
    for_each_group(n, lanes, [&](const float* as, const float* cs, float* os) {
      hn::StoreU(op(hn::LoadU(d, as), vb, hn::LoadU(d, cs)), d, os);
    }, a, c, out);
  }
}

void MulAddRun(simd::MulAddOp op, const float* a, const float* b, int64_t sb, const float* c, float* out, int64_t n) {
  switch (op) {
    case simd::MulAddOp::MulAdd: return MulAddOf(a, b, sb, c, out, n, [](V x, V y, V z) { return hn::MulAdd(x, y, z); });
    case simd::MulAddOp::MulSub: return MulAddOf(a, b, sb, c, out, n, [](V x, V y, V z) { return hn::MulSub(x, y, z); });
    case simd::MulAddOp::NegMulAdd:
      return MulAddOf(a, b, sb, c, out, n, [](V x, V y, V z) { return hn::NegMulAdd(x, y, z); });
  }
}

void SelectRun(const float* cond, const float* a, const float* b, float* out, int64_t n) {
  const D d;
  const V zero = hn::Zero(d);
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* cs, const float* as, const float* bs, float* os) {
    hn::StoreU(hn::IfThenElse(hn::Ne(hn::LoadU(d, cs), zero), hn::LoadU(d, as), hn::LoadU(d, bs)), d, os);
  }, cond, a, b, out);
}

// √x and 1 / √x, each operation correctly rounded: the bits of the scalar sqrtf and 1.0f / sqrtf
// (Unary<Sqrt>, Unary<Rsqrt>) at every target's width.
void SqrtRun(const float* x, float* out, int64_t n) {
  const D d;
  for_each_group(n, (int64_t)hn::Lanes(d), [&](const float* xs, float* os) { hn::StoreU(hn::Sqrt(hn::LoadU(d, xs)), d, os); },
                 x, out);
}

void RsqrtRun(const float* x, float* out, int64_t n) {
  const D d;
  const V one = hn::Set(d, 1.0f);
  for_each_group(n, (int64_t)hn::Lanes(d),
                 [&](const float* xs, float* os) { hn::StoreU(hn::Div(one, hn::Sqrt(hn::LoadU(d, xs))), d, os); }, x, out);
}

}  // namespace HWY_NAMESPACE
}  // namespace simd_targets
}  // namespace kx
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kx {
namespace simd_targets {
HWY_EXPORT(MulAddRun);
HWY_EXPORT(SelectRun);
HWY_EXPORT(SqrtRun);
HWY_EXPORT(RsqrtRun);
}  // namespace simd_targets

namespace simd {
using namespace simd_targets;

void mul_add(MulAddOp op, const float* a, const float* b, int64_t sb, const float* c, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(MulAddRun)(op, a, b, sb, c, out, n);
}
void select(const float* cond, const float* a, const float* b, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SelectRun)(cond, a, b, out, n);
}
void sqrt(const float* x, float* out, int64_t n) { HWY_DYNAMIC_DISPATCH(SqrtRun)(x, out, n); }
void rsqrt(const float* x, float* out, int64_t n) { HWY_DYNAMIC_DISPATCH(RsqrtRun)(x, out, n); }

}  // namespace simd
}  // namespace kx
#endif  // HWY_ONCE
