// The CPU's vector runs: every hot loop of the CPU kernels that is not oneDNN's. The loops with
// transcendentals (the softmaxes' exponentials, GELU, tanh, sigmoid, SiLU), dropout's Philox, the
// 16-bit float conversions, binary arithmetic, the row reductions, the softmax and norm rows and
// the optimizer updates, compiled by Google Highway once per x86 target (AVX-512, AVX2, SSE4, SSSE3
// and a scalar fallback) and dispatched at run time to the best target the CPU has, so that one
// binary is fast on any x86-64 machine, whatever machine built it. KEXUE_SIMD caps the target
// (docs/DESIGN.md, "SIMD dispatch").
//
// Declarations only, no Highway types: kx/ headers that nvcc also compiles call these on the host.
// The code is native/cpu/simd/ (runs.cpp: elementwise runs; rows.cpp: reductions, softmax and norm
// rows; optim.cpp: optimizer updates; fused.cpp: the fused groups' superinstructions; lanes-inl.h:
// what they share; target.cpp: the cap). Every
// element of a run, the last partial vector's included, goes through the same instructions, and
// reductions add in the fixed order of kx/reduce.h, so results do not depend on an element's
// position or on the thread count.
#pragma once
#include <cstdint>

namespace kx {
struct half_t;      // kx/dtype.h (which includes kx/math.h, which includes this)
struct bfloat16_t;  // kx/dtype.h
template <class A> struct AdamWCoef;  // ops/optim/math.h
template <class A> struct SgdCoef;    // ops/optim/math.h
}

namespace kx::simd {

// e[i] = exp(x[i] - shift) (e may be x): a row's probabilities from its logsumexp in the attention
// backward (exp(-inf) = 0 for masked entries).
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

// bfloat16 <-> float32 rows with kx::bf16_to_float / float_to_bf16's bits (round to nearest even,
// a NaN narrows to 0x7fc0).
void widen_bf16(const bfloat16_t* src, float* dst, int64_t n);
void narrow_bf16(const float* src, bfloat16_t* dst, int64_t n);

// ---- binary arithmetic ----------------------------------------------------------------------------

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };

// out[i] = a[i * sa] op b[i * sb] with sa, sb in {0, 1} (a stride-0 operand is one number); out
// may be a or b.
void binary(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n);

// x[i] = keep[i] ? x[i] : fill (attention's masked scores).
void mask_fill(float* x, const uint8_t* keep, int64_t n, float fill);

// ---- the fused groups' superinstructions (ops/fused_group/, native/cpu/simd/fused.cpp) -----------

// a·b + c, a·b − c and c − a·b, each with one rounding where the target has FMA (AVX2, AVX-512);
// the older targets multiply and add, rounding twice.
enum class MulAddOp : uint8_t { MulAdd, MulSub, NegMulAdd };

// out[i] = a[i] · b[i * sb] ± c[i] (MulAddOp) with sb in {0, 1}; out may be a, b or c.
void mul_add(MulAddOp op, const float* a, const float* b, int64_t sb, const float* c, float* out, int64_t n);

// out[i] = cond[i] != 0 ? a[i] : b[i] (the bits of a or b; out may be any of them).
void select(const float* cond, const float* a, const float* b, float* out, int64_t n);

// out[i] = √x[i] and 1 / √x[i], each operation correctly rounded (the bits of sqrtf, 1.0f / sqrtf),
// at the target's full width (the eager loop's sqrtf vectorises only to the build's baseline).
void sqrt(const float* x, float* out, int64_t n);
void rsqrt(const float* x, float* out, int64_t n);

// ---- row reductions, in kx/reduce.h's order -------------------------------------------------------

float block_sum(const float* x, int64_t n);                   // Σ x, one block of lanes (no cascade)
float block_dot(const float* a, const float* b, int64_t n);   // Σ a·b, as block_sum
float row_sum(const float* x, int64_t n);                     // Σ x, pairwise over kSumBlock blocks
float row_max(const float* x, int64_t n);                     // NaN-propagating; -inf when empty

// ---- softmax rows (kx/softmax.h's formulas) -------------------------------------------------------

// Σ exp(x[i] - m), pairwise over kSumBlock blocks; the exponentials are stored in y when y is not
// null (y may be x).
float sum_exp_shifted(const float* x, float* y, int64_t n, float m);
// y = softmax(x), log_softmax(x) (a row of all -inf gives NaN, as PyTorch; y may be x).
void softmax_row(const float* x, float* y, int64_t n);
void log_softmax_row(const float* x, float* y, int64_t n);
// dx from the forward's y: y (dy - Σ dy y), and dy - exp(y) Σ dy.
void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n);
void log_softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n);
// log Σ exp(x), stable (an all -inf row gives -inf, a NaN gives NaN).
float logsumexp_row(const float* x, int64_t n);
// The cross-entropy logsumexp(x) - x[label] of one row and, in dx, its gradient
// scale (softmax(x) - onehot(label)) from the same exponentials (a NaN or infinite max gives a NaN
// gradient).
float cross_entropy_row_grad(const float* x, float* dx, int64_t n, int64_t label, float scale);

// ---- norm rows (ops/norm/math.h's formulas), float32 rows of n > 0 --------------------------------

// y = layer_norm(x) with γ, β (ones and zeros when the op has none); the row's mean and rstd.
void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps,
                    float* mean, float* rstd);
// dx of one row (dx may be dy), and its dγ and dβ terms dy·x̂ and dy added into dgamma and dbeta.
void layer_norm_row_backward(const float* dy, const float* x, const float* gamma, float mean, float rstd, float* dx,
                             float* dgamma, float* dbeta, int64_t n);
// y = rms_norm(x); returns the row's rstd.
float rms_norm_row(const float* x, const float* gamma, float* y, int64_t n, float eps);
// dx of one row (dx may be dy), and its dγ term dy·x·rstd added into dgamma.
void rms_norm_row_backward(const float* dy, const float* x, const float* gamma, float rstd, float* dx, float* dgamma,
                           int64_t n);

// ---- optimizer updates (ops/optim/math.h's formulas in double, stored once as float32) ----------
// θ, g and the state are float32 arrays of n; g is used as gscale·g.

bool all_finite(const float* x, int64_t n);
// Σ x² in double: element i adds into accumulator i mod 16, the accumulators fold by halving.
double sum_sq(const float* x, int64_t n);
// Tiger: m ← b1·m + b2·g; with a step also θ ← θ − η·(sign(m) + λ·θ) from the stored m.
void tiger_momentum(float* m, const float* g, int64_t n, double gscale, double b1, double b2);
void tiger_step(float* theta, float* m, const float* g, int64_t n, double gscale, double b1, double b2, double eta,
                double wd);
// θ ← (θ − centre)·ratio + centre: the non-finite guard.
void shrink_toward(float* theta, int64_t n, double centre, double ratio);
void lion(float* theta, float* m, const float* g, int64_t n, double gscale, double lr, double beta1, double beta2,
          double wd);
void adamw(float* theta, float* m, float* v, const float* g, int64_t n, double gscale, const AdamWCoef<double>& c);
// momentum_buf is read and written only with momentum (and read only when not first).
void sgd(float* theta, float* momentum_buf, const float* g, int64_t n, double gscale, const SgdCoef<double>& c,
         bool first, bool nesterov);

// The target the runs dispatch to, as Highway names it: "AVX3" (AVX-512), "AVX2", "SSE4",
// "SSSE3", "SCALAR" (or "EMU128", the fallback of other compilers).
const char* target_name();

// Caps the targets by the environment variable KEXUE_SIMD (best, avx512, avx2, sse4, scalar; unset
// or empty is best); E_ARG for any other value. Called once, when the addon loads.
void cap_target_from_env();

}  // namespace kx::simd
