// The CPU's vector runs: the loops with transcendentals (the softmaxes' exponentials, GELU, tanh,
// sigmoid, SiLU), dropout's Philox and the float16 conversions, compiled by Google Highway once per x86 target
// (AVX-512, AVX2, SSE4, SSSE3 and a scalar fallback) and dispatched at run time to the best target
// the CPU has, so that one binary is fast on any x86-64 machine without -march=native.
// KEXUE_SIMD caps the target (docs/DESIGN.md, "SIMD dispatch").
//
// Declarations only, no Highway types: kx/ headers that nvcc also compiles call these on the host.
// The code is native/cpu/simd/ (runs.cpp: the runs; target.cpp: the cap). Every element of a run,
// the last partial vector's included, goes through the same instructions, so its bits do not
// depend on its position or on the thread count.
#pragma once
#include <cstdint>

namespace kx {
struct half_t;  // kx/dtype.h (which includes kx/math.h, which includes this)
}

namespace kx::simd {

// e[i] = exp(x[i] - shift) (e may be x): the exponentials of the row softmaxes, cross-entropy and
// attention (exp(-inf) = 0 for masked entries).
void exp_shifted(const float* x, float* e, int64_t n, float shift);

// y[i] = f(x[i]) (y may be x); the functions of ops/elementwise/math.h.
void exp(const float* x, float* y, int64_t n);
void tanh(const float* x, float* y, int64_t n);
void sigmoid(const float* x, float* y, int64_t n);
void silu(const float* x, float* y, int64_t n);
void gelu_erf(const float* x, float* y, int64_t n);
void gelu_tanh(const float* x, float* y, int64_t n);

// dx[i] = dy[i] * f'(x[i]) (dx may be x or dy).
void silu_grad(const float* x, const float* dy, float* dx, int64_t n);
void gelu_erf_grad(const float* x, const float* dy, float* dx, int64_t n);
void gelu_tanh_grad(const float* x, const float* dy, float* dx, int64_t n);

// y[i] = inverted dropout of x[i] (kx/philox.h's dropout_element) with random element offset + i
// (y may be x): Philox-4x32-10 computed for several blocks at once, the same words as philox_block.
void dropout(const float* x, float* y, int64_t n, uint64_t seed, uint64_t offset, float p, float scale);

// float16 <-> float32 rows with kx::half_to_float / float_to_half's bits: the hardware conversions
// where the target has them (F16C: AVX2, AVX-512). The hardware quiets signalling NaNs on the way up
// and keeps NaN payloads on the way down, where kx keeps the payload bits up and writes
// sign|0x7e00 down (as PyTorch), so a vector holding a NaN is converted element by element.
void widen_half(const half_t* src, float* dst, int64_t n);
void narrow_half(const float* src, half_t* dst, int64_t n);

// The target the runs dispatch to, as Highway names it: "AVX3" (AVX-512), "AVX2", "SSE4",
// "SSSE3", "SCALAR" (or "EMU128", the fallback of other compilers).
const char* target_name();

// Caps the targets by the environment variable KEXUE_SIMD (best, avx512, avx2, sse4, scalar; unset
// or empty is best); E_ARG for any other value. Called once, when the addon loads.
void cap_target_from_env();

}  // namespace kx::simd
