// The CPU's runs of the unary functions and their derivatives over float32 arrays, shared by the
// eager kernels (elementwise.cpp) and the fused groups' block interpreter (ops/fused_group/), so
// that a unary op inside a compiled program gives the eager op's bits. CPU only (kx/simd.h's runs).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kx/convert.h"
#include "kx/simd.h"
#include "ops/elementwise/math.h"

namespace kx {

// The unary loops run in blocks of a fixed kBlock elements, a multiple of every vector width, so
// the compiler emits vector code with no scalar remainder loop; the last partial block goes through
// a zero-padded buffer. Every element then takes the same instructions wherever it sits: a
// remainder loop could contract a*b+c into an FMA differently and change the last bit with the
// element's position (and so with the thread count).
constexpr int64_t kBlock = 64;

// The functions with transcendentals run as the CPU's dispatched vector runs (kx/simd.h), the
// same formulas as Unary<F>; nullptr where the plain loop vectorises (or, for log and pow, stays
// libm's).
using UnaryRun = void (*)(const float*, float*, int64_t);
using UnaryGradRun = void (*)(const float*, const float*, float*, int64_t);

template <UnaryFn F> constexpr UnaryRun unary_simd_run() {
  switch (F) {
    case UnaryFn::Exp: return simd::exp;
    case UnaryFn::Tanh: return simd::tanh;
    case UnaryFn::Sigmoid: return simd::sigmoid;
    case UnaryFn::Silu: return simd::silu;
    case UnaryFn::Gelu: return simd::gelu_erf;
    case UnaryFn::GeluTanh: return simd::gelu_tanh;
    default: return nullptr;
  }
}

// dx = dy * f'(x); tanh, sigmoid and exp take their derivatives from y, which needs no run.
template <UnaryFn F> constexpr UnaryGradRun unary_simd_grad_run() {
  switch (F) {
    case UnaryFn::Silu: return simd::silu_grad;
    case UnaryFn::Gelu: return simd::gelu_erf_grad;
    case UnaryFn::GeluTanh: return simd::gelu_tanh_grad;
    default: return nullptr;
  }
}

// n elements, n a multiple of kBlock: one call of the vector run (its lanes are independent, so
// how elements are grouped into calls changes no bit; a call per block cost a third of GELU's time).
template <UnaryFn F>
inline void unary_blocks(const float* __restrict x, float* __restrict y, int64_t n, float p) {
  if constexpr (unary_simd_run<F>() != nullptr) {
    unary_simd_run<F>()(x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = Unary<F>::f(x[i], p);
  }
}

// Not inlined: the whole blocks and the padded last one then run the same instructions (inlined,
// gcc compiled the padded copy with other operand orders, so that of two NaN operands a
// derivative kept the other one there; the x86 emitter writes the whole blocks' order).
template <UnaryFn F>
__attribute__((noinline)) void unary_backward_blocks(const float* __restrict x, const float* __restrict y, const float* __restrict dy,
                                  float* __restrict dx, int64_t n, float p) {
  if constexpr (unary_simd_grad_run<F>() != nullptr) {
    unary_simd_grad_run<F>()(x, dy, dx, n);
  } else {
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * Unary<F>::df(x[i], y[i], p);
  }
}

// n elements (n <= kBlock) of src as float32 in buf, zero-padded to kBlock.
template <class T>
inline void widen_block(const T* src, int64_t n, float* buf) {
  widen(src, buf, n);
  for (int64_t i = n; i < kBlock; ++i) buf[i] = 0.0f;
}

// y = f(x) over any n float32 elements (y must not overlap x): the whole blocks in place, the rest
// through a zero-padded block, as the eager float32 loop does.
template <UnaryFn F>
inline void unary_float_run(const float* x, float* y, int64_t n, float p) {
  const int64_t whole = n / kBlock * kBlock;
  unary_blocks<F>(x, y, whole, p);
  if (whole < n) {
    float bx[kBlock], by[kBlock];
    widen_block(x + whole, n - whole, bx);
    unary_blocks<F>(bx, by, kBlock, p);
    std::copy(by, by + (n - whole), y + whole);
  }
}

// dx = dy * f'(x, y) over any n float32 elements (dx must not overlap the others), as unary_float_run.
template <UnaryFn F>
inline void unary_backward_float_run(const float* x, const float* y, const float* dy, float* dx, int64_t n, float p) {
  const int64_t whole = n / kBlock * kBlock;
  unary_backward_blocks<F>(x, y, dy, dx, whole, p);
  if (whole < n) {
    float bx[kBlock], by[kBlock], bd[kBlock], bo[kBlock];
    widen_block(x + whole, n - whole, bx);
    widen_block(y + whole, n - whole, by);
    widen_block(dy + whole, n - whole, bd);
    unary_backward_blocks<F>(bx, by, bd, bo, kBlock, p);
    std::copy(bo, bo + (n - whole), dx + whole);
  }
}

}  // namespace kx
