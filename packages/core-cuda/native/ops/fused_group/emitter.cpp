// The code generator of the x86-64 emitter (emitter.h), on Xbyak: one loop over whole vectors
// each iteration running the program on one vector of elements. Every operation is one IEEE
// instruction (the multiply-adds one FMA, as the interpreter's), so an emitted group gives the
// interpreter's bits. The exponential and what is made of it (sigmoid, SiLU, tanh, both GELUs)
// are the vector runs' own steps (cpu/simd/lanes-inl.h and runs.cpp as gcc compiles them for
// AVX-512 and for AVX2: the same contractions into FMAs, vscalefps or the two-factor 2^n), so they
// give those bits too. Halves are widened on load (F16C, or a shift for bfloat16) and narrowed on
// store as kx/dtype.h's from_float (round to nearest even; every bfloat16 NaN 0x7fc0), values
// staying float32 in between, as in the interpreter. The unary derivatives are the interpreter's
// runs too (unary_grad()). Instructions it does not emit (log, pow, pow's derivative) leave the
// whole group to the interpreter.
//
// Calling convention: System V x86-64 (rdi = streams, rsi = constants, rdx = n); rcx counts
// elements, rax holds a stream pointer, r8 the tail's mask bits; every register used is
// caller-saved. With AVX-512 the program is written twice: the loop's body, then a copy for the
// last partial vector whose loads and stores are masked by k2 (a masked load does not fault on the
// lanes it leaves out).
#include "ops/fused_group/emitter.h"

#include <cstring>

#if KX_WITH_XBYAK
#include <xbyak/xbyak.h>
#endif

namespace kx {

const std::array<uint32_t, kConstInputs>& kernel_fixed_constants() {
  static const std::array<uint32_t, kConstInputs> table = [] {
    std::array<uint32_t, kConstInputs> t{};
    const auto put = [&](int at, float v) { std::memcpy(&t[(size_t)at], &v, sizeof v); };
    put(kConstSign, -0.0f);
    put(kConstOne, 1.0f);
    t[kConstBf16Bias] = 0x7fff;
    t[kConstBf16NaN] = 0x7fc0;
    // kx/math_formulas.inc's constants: the exponential's (as lanes-inl.h's Exp uses them), tanh's,
    // the erf's and GELU's
    put(kConstExpMax, kExpMax);
    put(kConstExpMin, kExpMin);
    put(kConstLog2e, kExpLog2e);
    put(kConstShifter, kExpShifter);
    put(kConstNegShifter, -kExpShifter);
    put(kConstLn2Hi, kLn2Hi);
    put(kConstLn2Lo, kLn2Lo);
    const float exp_poly[6] = {kExpP0, kExpP1, kExpP2, kExpP3, kExpP4, kExpP5};
    for (int k = 0; k < 6; ++k) put(kConstExpPoly + k, exp_poly[k]);
    t[kConstExpBitsBias] = (uint32_t)-0x4B400000;  // -(the bits of kExpShifter)
    t[kConstExpBias] = 127;
    t[kConstAbsMask] = 0x7fffffff;
    put(kConstHalf, 0.5f);
    put(kConstTwo, 2.0f);
    put(kConstTanhCut, kTanhCut);
    const float tanh_poly[5] = {kTanhP0, kTanhP1, kTanhP2, kTanhP3, kTanhP4};
    for (int k = 0; k < 5; ++k) put(kConstTanhPoly + k, tanh_poly[k]);
    put(kConstInvSqrt2, kInvSqrt2);
    put(kConstErfP, kErfP);
    const float erf_poly[5] = {kErfA0, kErfA1, kErfA2, kErfA3, kErfA4};
    for (int k = 0; k < 5; ++k) put(kConstErfPoly + k, erf_poly[k]);
    put(kConstGeluCubic, kGeluCubic);
    put(kConstSqrt2OverPi, kSqrt2OverPi);
    put(kConstInvSqrt2Pi, kInvSqrt2Pi);
    put(kConstGeluTanhSlope, kGeluTanhSlope);
    return t;
  }();
  return table;
}

#if KX_WITH_XBYAK
namespace {

using Xbyak::Xmm;

// Vector registers 0..7 are scratch: three operands fetched from the stack or the constants, a
// spilled destination, and four temporaries (a zero, a mask, the exponential's intermediates); the
// program's registers live in the rest, in order, and those beyond them in stack slots.
constexpr int kScratch = 8;

// Whether the emitter writes this instruction: the code generators' common set (generated_instr),
// the exponential's family (exp, sigmoid, SiLU, tanh, both GELUs) and the derivatives of every
// unary but pow's. Log and pow stay libm's scalar logf and powf in the interpreter, whose bits
// are the C library's (glibc's tables and double-precision steps, which may change with its
// version), so no emitted sequence can promise them; pow's derivative calls powf too. The
// derivatives of SiLU and both GELUs are Highway vector runs whose contractions differ per target:
// their AVX2 forms are emitted (read off gcc's AVX2 code and checked bit for bit on an AVX2 CPU);
// on AVX-512 they stay interpreted until their AVX3 forms can be checked on such a CPU.
bool emitted_instr(const GroupInstr& ins, KernelIsa isa) {
  if (generated_instr(ins)) return true;
  switch (ins.op) {
    case GroupOp::Unary:
      return ins.fn == UnaryFn::Exp || ins.fn == UnaryFn::Sigmoid || ins.fn == UnaryFn::Silu || ins.fn == UnaryFn::Tanh ||
             ins.fn == UnaryFn::Gelu || ins.fn == UnaryFn::GeluTanh;
    case GroupOp::UnaryGrad:
      if (ins.fn == UnaryFn::Silu || ins.fn == UnaryFn::Gelu || ins.fn == UnaryFn::GeluTanh) return isa == KernelIsa::Avx2;
      return ins.fn != UnaryFn::Pow;
    default:
      return false;
  }
}

class GroupKernelCode final : public GroupKernel, private Xbyak::CodeGenerator {
 public:
  GroupKernelCode(const GroupProgram& p, const KernelLayout& layout)
      : Xbyak::CodeGenerator(4096, Xbyak::AutoGrow),
        layout_(layout),
        wide_(layout.isa == KernelIsa::Avx512),
        vbytes_(wide_ ? 64 : 32),
        homes_((wide_ ? 32 : 16) - kScratch) {
    lanes = kernel_lanes(layout.isa);
    masks_tail = wide_;
    generate(p);
    readyRE();
    fn = getCode<GroupKernelFn>();
  }

 private:
  Xmm vec(int i) const { return wide_ ? Xmm(Xbyak::Zmm(i)) : Xmm(Xbyak::Ymm(i)); }
  Xmm scratch(int i) const { return vec(i); }
  bool in_register(int r) const { return r < homes_; }
  Xbyak::Address slot(int r) { return ptr[rsp + (r - homes_) * vbytes_]; }
  Xbyak::Address constant(int at) { return dword[rsi + at * 4]; }

  // The vector holding operand r (a register, or the instruction's immediate when r < 0).
  Xmm operand(int r, int at, int s) {
    if (r < 0) {
      vbroadcastss(scratch(s), constant(kConstImms + at));
      return scratch(s);
    }
    if (in_register(r)) return vec(kScratch + r);
    vmovups(scratch(s), slot(r));
    return scratch(s);
  }

  // Where instruction `at` computes its result: r's own vector, or the spill scratch.
  Xmm destination(int r) { return in_register(r) ? vec(kScratch + r) : scratch(3); }

  void generate(const GroupProgram& p) {
    const int spilled = p.registers > homes_ ? p.registers - homes_ : 0;
    Xbyak::Label loop, tail, done;
    if (spilled) sub(rsp, spilled * vbytes_);
    xor_(ecx, ecx);
    L(loop);
    lea(rax, ptr[rcx + lanes]);
    cmp(rax, rdx);
    ja(tail, T_NEAR);  // (unsigned: rcx + lanes > n)
    body(p);
    add(rcx, lanes);
    jmp(loop, T_NEAR);
    L(tail);
    if (masks_tail) {
      cmp(rcx, rdx);
      jae(done, T_NEAR);
      // k2 = the low n - rcx bits
      mov(rax, rdx);
      sub(rax, rcx);
      mov(r8d, 0xffff);
      bzhi(r8d, r8d, eax);
      kmovw(k2, r8d);
      tail_ = true;
      body(p);
      tail_ = false;
    }
    L(done);
    if (spilled) add(rsp, spilled * vbytes_);
    vzeroupper();
    ret();
  }

  void body(const GroupProgram& p) {
    for (size_t at = 0; at < p.code.size(); ++at) instruction(p.code[at], (int)at);
  }

  // A stream's load destination: masked and zeroing in the tail.
  Xmm loaded(const Xmm& d) const { return tail_ ? d | k2 | T_z : d; }

  void load(const Xmm& d, int k) {
    switch (layout_.reads[(size_t)k]) {
      case InputRead::Scalar:
        vbroadcastss(d, constant(kConstInputs + k));
        return;
      case InputRead::Column:  // (one element, always there: nothing to mask in the tail)
        mov(rax, ptr[rdi + k * 8]);
        vbroadcastss(d, dword[rax]);
        return;
      case InputRead::Float32:
        mov(rax, ptr[rdi + k * 8]);
        vmovups(loaded(d), ptr[rax + rcx * 4]);
        return;
      case InputRead::Float16:
        mov(rax, ptr[rdi + k * 8]);
        vcvtph2ps(loaded(d), ptr[rax + rcx * 2]);
        return;
      case InputRead::BFloat16:  // the upper half of a float32
        mov(rax, ptr[rdi + k * 8]);
        vpmovzxwd(loaded(d), ptr[rax + rcx * 2]);
        vpslld(d, d, 16);
        return;
      case InputRead::UInt8:
        mov(rax, ptr[rdi + k * 8]);
        vpmovzxbd(loaded(d), ptr[rax + rcx]);
        vcvtdq2ps(d, d);
        return;
      case InputRead::Unused:
        break;
    }
  }

  // d = a·b ± c through the 231 form, which accumulates into its destination.
  void multiply_add(GroupOp op, const Xmm& d, const Xmm& a, const Xmm& b, const Xmm& c) {
    const bool clobbers = d.getIdx() == a.getIdx() || d.getIdx() == b.getIdx();
    const Xmm acc = clobbers ? scratch(4) : d;
    if (acc.getIdx() != c.getIdx()) vmovaps(acc, c);
    if (op == GroupOp::MulAdd) vfmadd231ps(acc, a, b);
    else if (op == GroupOp::MulSub) vfmsub231ps(acc, a, b);
    else vfnmadd231ps(acc, a, b);
    if (clobbers) vmovaps(d, acc);
  }

  void unary(UnaryFn fn, const Xmm& d, const Xmm& a) {
    const Xmm t = scratch(4);
    switch (fn) {
      case UnaryFn::Neg:
        negated(d, a, t);
        return;
      case UnaryFn::Sqrt:
        vsqrtps(d, a);
        return;
      case UnaryFn::Rsqrt:  // 1 / sqrt(x), two correctly rounded steps as eager's
        vsqrtps(t, a);
        vbroadcastss(d, constant(kConstOne));
        vdivps(d, d, t);
        return;
      case UnaryFn::Relu:  // max(0, x) returns x when either is NaN or both are zero: x < 0 ? 0 : x
        vxorps(t, t, t);
        vmaxps(d, t, a);
        return;
      case UnaryFn::Exp:
        exp(d, a);
        return;
      case UnaryFn::Sigmoid:  // 1 / (1 + e^-x)
      case UnaryFn::Silu: {   // x / (1 + e^-x)
        const Xmm x = scratch(1), minus_x = scratch(2);
        if (fn == UnaryFn::Silu) vmovaps(x, a);  // (d may be a's register)
        negated(minus_x, a, minus_x);
        exp(d, minus_x);
        vbroadcastss(t, constant(kConstOne));
        vaddps(d, t, d);
        vdivps(d, fn == UnaryFn::Sigmoid ? t : x, d);
        return;
      }
      case UnaryFn::Tanh:
        vmovaps(scratch(1), a);
        tanh_of(d);
        return;
      case UnaryFn::GeluTanh: {  // (x / 2) (1 + tanh(sqrt(2/π) (0.044715 x³ + x)))
        const Xmm x = scratch(0), inner = scratch(1), c = scratch(2);
        vmovaps(inner, a);  // (a may be scratch 0)
        vbroadcastss(x, constant(kConstHalf));
        vmulps(x, inner, x);  // x / 2, kept through tanh_of
        vbroadcastss(c, constant(kConstGeluCubic));
        vmulps(c, inner, c);
        vmulps(c, c, inner);
        vfmadd132ps(c, inner, inner);  // 0.044715 x³ + x
        vbroadcastss(t, constant(kConstSqrt2OverPi));
        vmulps(inner, c, t);
        tanh_of(d);
        vbroadcastss(t, constant(kConstOne));
        vaddps(d, d, t);
        vmulps(d, d, x);
        return;
      }
      case UnaryFn::Gelu:
        gelu_erf(d, a);
        return;
      default:
        return;
    }
  }

  // p = the polynomial of `count` coefficients at constants[first...] (highest degree first) in x,
  // by Horner's rule with one FMA a coefficient, as the vector runs contract it; c: a temporary.
  void horner(const Xmm& p, int first, int count, const Xmm& x, const Xmm& c) {
    vbroadcastss(p, constant(first));
    for (int k = 1; k < count; ++k) {
      vbroadcastss(c, constant(first + k));
      vfmadd132ps(p, c, x);  // p x + c_k
    }
  }

  // d = −x (the sign bit flipped); tmp a register other than x, d's own allowed.
  void negated(const Xmm& d, const Xmm& x, const Xmm& tmp) {
    vbroadcastss(tmp, constant(kConstSign));
    vxorps(d, x, tmp);
  }

  // d = |x| (the sign bit cleared); d a register other than x.
  void abs_of(const Xmm& d, const Xmm& x) {
    vbroadcastss(d, constant(kConstAbsMask));
    vandps(d, d, x);
  }

  // d = copysign(d, x) when d's sign bit is clear or is to be replaced (as Highway's CopySign).
  void copy_sign(const Xmm& d, const Xmm& x, const Xmm& t1, const Xmm& t2) {
    vbroadcastss(t1, constant(kConstAbsMask));
    vandps(d, d, t1);
    vbroadcastss(t1, constant(kConstSign));
    vandps(t2, x, t1);
    vorps(d, d, t2);
  }

  // d = tanh(x), x in scratch 1, as lanes-inl.h's Tanh: |x| < 0.625 ? x + x z P(z) : copysign(1 −
  // 2 / (e^2|x| + 1), x), z = x². Keeps scratch 0 and 1; the small branch lives in scratch 2, 2|x| in
  // scratch 3 (exp's input, which d may be). fused_plus_one: e^2|x| + 1 as exp's plus_one (as the
  // tanh GELU's derivative's vector run has it).
  void tanh_of(const Xmm& d, bool fused_plus_one = false) {
    const Xmm x = scratch(1), small = scratch(2), twice = scratch(3), z = scratch(4), c = scratch(5);
    vmulps(z, x, x);
    horner(small, kConstTanhPoly, 5, z, c);
    vmulps(small, z, small);
    vfmadd132ps(small, x, x);  // z P x + x
    abs_of(twice, x);
    vaddps(twice, twice, twice);
    exp(d, twice, fused_plus_one);
    vbroadcastss(z, constant(kConstOne));
    if (!fused_plus_one) vaddps(d, d, z);
    vbroadcastss(c, constant(kConstTwo));
    vdivps(d, c, d);
    vsubps(d, z, d);  // 1 − 2 / (e + 1)
    copy_sign(d, x, c, scratch(6));
    // |x| < 0.625 (false for NaN): the polynomial
    abs_of(z, x);
    vbroadcastss(c, constant(kConstTanhCut));
    select_where(d, c, z, 0x1E, d, small, z);  // _CMP_GT_OQ: 0.625 > |x|
  }

  // d = (lhs pred rhs) ? when_true : when_false, lane by lane (pred a vcmpps predicate): an opmask
  // blend with AVX-512, vblendvps on a compare mask written into `mask` (a scratch) with AVX2.
  void select_where(const Xmm& d, const Xmm& lhs, const Xmm& rhs, uint8_t pred, const Xmm& when_false,
                    const Xmm& when_true, const Xmm& mask) {
    if (wide_) {
      vcmpps(k1, lhs, rhs, pred);
      vblendmps(d | k1, when_false, when_true);
    } else {
      vcmpps(mask, lhs, rhs, pred);
      vblendvps(d, when_false, when_true, mask);
    }
  }

  // d = x Φ(x), Φ(x) = (1 + erf(x / √2)) / 2 as runs.cpp's GeluCdf.
  void gelu_erf(const Xmm& d, const Xmm& a_in) {
    const Xmm x = scratch(1), one = scratch(4), c = scratch(5);
    vmovaps(x, a_in);
    signed_erf(d);
    vaddps(d, d, one);
    vbroadcastss(c, constant(kConstHalf));
    vmulps(d, d, c);
    vmulps(d, d, x);
  }

  // d = erf(x / √2), x in scratch 1 (kept), as runs.cpp's GeluCdf: with a = |x| / √2, erf(a) =
  // |1 − P(t) t e^(−a²)|, t = 1 / (1 + p a), given x's sign. Leaves 1.0 in scratch 4; temporaries:
  // scratch 2-7, d scratch 3 or a program register.
  void signed_erf(const Xmm& d) {
    const Xmm x = scratch(1), a = scratch(2), minus_a2 = scratch(3), one = scratch(4), c = scratch(5), t = scratch(6), p = scratch(7);
    abs_of(a, x);
    vbroadcastss(c, constant(kConstInvSqrt2));
    vmulps(a, a, c);
    vmulps(minus_a2, a, a);
    negated(minus_a2, minus_a2, c);
    exp(d, minus_a2);
    vbroadcastss(one, constant(kConstOne));
    vbroadcastss(c, constant(kConstErfP));
    vmovaps(t, a);
    vfmadd132ps(t, one, c);  // a p + 1
    vdivps(t, one, t);
    horner(p, kConstErfPoly, 5, t, c);
    vmulps(t, t, p);
    vfnmadd132ps(d, one, t);  // 1 − e P(t) t
    copy_sign(d, x, c, p);
  }

  // g = Φ(x) + x φ(x) (scratch 3), φ(x) = e^(−x²/2) / √(2π), as runs.cpp's GeluErfGradRun: x φ as
  // (e · (1/√(2π))) x, then (1 + erf) · 0.5 + x φ in one FMA (gcc's contraction of Φ's halving into
  // the sum; 1 + erf's operands in AVX2's order). AVX2 only (emitted_instr). Temporaries: scratch 0-7.
  Xmm gelu_erf_grad(const Xmm& x_in) {
    const Xmm x_phi = scratch(0), x = scratch(1), c = scratch(2), g = scratch(3), one = scratch(4), half = scratch(5);
    vmovaps(x, x_in);  // (x_in may be scratch 0)
    vbroadcastss(x_phi, constant(kConstHalf));
    negated(x_phi, x_phi, c);  // −0.5
    vmulps(x_phi, x, x_phi);
    vmulps(x_phi, x_phi, x);
    exp(x_phi, x_phi);
    vbroadcastss(c, constant(kConstInvSqrt2Pi));
    vmulps(x_phi, x_phi, c);
    vmulps(x_phi, x_phi, x);
    signed_erf(g);
    vaddps(g, g, one);
    vbroadcastss(half, constant(kConstHalf));
    vfmadd132ps(g, x_phi, half);
    return g;
  }

  // g = (1 + t) / 2 + (x / 2)(1 − t²) u', t = tanh(u), u = √(2/π)(x + 0.044715 x³), u' = √(2/π)(1 +
  // 3 · 0.044715 x²), as runs.cpp's GeluTanhGradRun compiles for AVX2 (tanh's e + 1 fused, the last
  // FMA in its 231 form). AVX2 only (emitted_instr). Returns g's register (scratch 3); temporaries:
  // scratch 0-7.
  Xmm gelu_tanh_grad(const Xmm& x_in) {
    const Xmm x = scratch(0), u = scratch(1), c = scratch(2), t = scratch(3);
    vmovaps(x, x_in);
    vbroadcastss(c, constant(kConstGeluCubic));
    vmulps(u, x, c);
    vmulps(u, u, x);
    vfmadd132ps(u, x, x);  // 0.044715 x³ + x
    vbroadcastss(c, constant(kConstSqrt2OverPi));
    vmulps(u, u, c);
    tanh_of(t, true);
    const Xmm du = scratch(4), one_minus_t2 = scratch(5), one = scratch(6), k = scratch(7);
    vmulps(du, x, x);
    vmovaps(one_minus_t2, t);
    vbroadcastss(one, constant(kConstOne));
    vbroadcastss(k, constant(kConstGeluTanhSlope));
    vfmadd132ps(du, one, k);  // x² 0.134145 + 1
    vfnmadd132ps(one_minus_t2, one, t);
    vaddps(t, t, one);
    vbroadcastss(k, constant(kConstHalf));
    vmulps(x, x, k);
    vmulps(t, t, k);
    vbroadcastss(one, constant(kConstSqrt2OverPi));
    vmulps(du, du, one);
    vmulps(x, x, one_minus_t2);
    vfmadd231ps(t, du, x);
    return t;
  }

  // d = e^a as lanes-inl.h's Exp: clamp (x86's min and max keep a NaN of their second operand), n =
  // round(x log2 e) through the shifter, r = x − n ln2 in two FMAs, Cephes' polynomial by FMAs,
  // then 2^n by vscalefps or, with AVX2, as two factors built in the exponent bits (a subnormal
  // result rounds once). a is read first only, so d may be a's register; temporaries: scratch 4-7.
  // plus_one (AVX2 only): d = e^a + 1, as the vector runs of SiLU's derivative compute it (gcc
  // contracts the second factor's multiplication and the addition into one FMA).
  void exp(const Xmm& d, const Xmm& a, bool plus_one = false) {
    const Xmm x = scratch(4), shifted = scratch(5), n = scratch(6), p = scratch(7);
    vbroadcastss(x, constant(kConstExpMax));
    vminps(x, x, a);
    vbroadcastss(n, constant(kConstExpMin));
    vmaxps(x, n, x);
    vbroadcastss(n, constant(kConstLog2e));
    vbroadcastss(p, constant(kConstShifter));
    vmovaps(shifted, x);
    vfmadd132ps(shifted, p, n);  // x log2e + shifter
    vbroadcastss(n, constant(kConstNegShifter));
    vaddps(n, shifted, n);
    vbroadcastss(p, constant(kConstLn2Hi));
    vfnmadd231ps(x, n, p);
    vbroadcastss(p, constant(kConstLn2Lo));
    vfnmadd231ps(x, n, p);  // x is now r
    // the polynomial in p, its coefficients through d (free: a was read), then r² in d
    horner(p, kConstExpPoly, 6, x, d);
    vmulps(d, x, x);
    vfmadd132ps(p, x, d);  // poly r² + r
    vbroadcastss(d, constant(kConstOne));
    vaddps(p, p, d);
    if (wide_) {
      vscalefps(d, p, n);
      return;
    }
    // AVX2: ni = the integer n (the shifted bits less the shifter's), n1 = ni >> 1; 2^n =
    // 2^n1 · 2^(ni − n1), each factor's exponent field written directly
    vpbroadcastd(d, constant(kConstExpBitsBias));
    vpaddd(shifted, shifted, d);  // ni
    vpsrad(n, shifted, 1);        // n1
    vpbroadcastd(d, constant(kConstExpBias));
    vpaddd(x, n, d);
    vpslld(x, x, 23);             // 2^n1
    vpsubd(n, d, n);
    vpaddd(n, n, shifted);
    vpslld(n, n, 23);             // 2^(ni − n1)
    vmulps(p, p, x);
    if (!plus_one) {
      vmulps(d, p, n);
      return;
    }
    vbroadcastss(x, constant(kConstOne));
    vfmadd132ps(p, x, n);  // p 2^(ni − n1) + 1
    vmovaps(d, p);
  }

  // d = dy · fn'(x, y) (x = a, y = b = fn(x), dy = c) as unary_backward_float_run computes it. The
  // derivatives from plain loops are gcc's vectorisation of math.h's df for the baseline x86-64
  // target (SSE: no FMA, so one IEEE operation a step on either ISA), with the loop's operand
  // order (the first source's NaN is the one an operation keeps) and its folds (dy · −1 a sign
  // flip, dy · 1 dy itself); SiLU's is the vector run's (the GELUs': gelu_erf_grad, gelu_tanh_grad).
  // d is written last, so it may be any operand's register; temporaries: scratch 4-7, and 0-3 for
  // SiLU's.
  void unary_grad(UnaryFn fn, const Xmm& d, const Xmm& x, const Xmm& y, const Xmm& dy) {
    const Xmm t = scratch(4), k = scratch(5);
    switch (fn) {
      case UnaryFn::Neg:
        negated(d, dy, t);
        return;
      case UnaryFn::Exp:  // dy y
        vmulps(d, dy, y);
        return;
      case UnaryFn::Log:  // (1 / x) dy
        vbroadcastss(t, constant(kConstOne));
        vdivps(t, t, x);
        vmulps(d, t, dy);
        return;
      case UnaryFn::Sqrt:  // (0.5 / y) dy
        vbroadcastss(t, constant(kConstHalf));
        vdivps(t, t, y);
        vmulps(d, t, dy);
        return;
      case UnaryFn::Rsqrt:  // (y (−0.5)) y y dy
        vbroadcastss(k, constant(kConstHalf));
        negated(k, k, t);
        vmulps(t, y, k);
        vmulps(t, t, y);
        vmulps(t, t, y);
        vmulps(d, t, dy);
        return;
      case UnaryFn::Tanh:  // dy (1 − y²)
        vmulps(t, y, y);
        vbroadcastss(k, constant(kConstOne));
        vsubps(t, k, t);
        vmulps(d, dy, t);
        return;
      case UnaryFn::Sigmoid:  // ((1 − y) y) dy
        vbroadcastss(t, constant(kConstOne));
        vsubps(t, t, y);
        vmulps(t, t, y);
        vmulps(d, t, dy);
        return;
      case UnaryFn::Relu:  // x <= 0 (false for NaN) ? dy · 0 : dy
        vxorps(t, t, t);
        vmulps(k, dy, t);
        select_where(d, x, t, 0x12, dy, k, t);  // _CMP_LE_OQ
        return;
      case UnaryFn::Silu:
        silu_grad(d, x, dy);
        return;
      default:
        return;
    }
  }

  // d = s (1 + x (1 − s)) dy, s = 1 / (1 + e^−x), as runs.cpp's SiluGradRun (1 + e^−x from exp's
  // plus_one; the last product's operands in the order gcc gives AVX2). AVX2 only (emitted_instr).
  void silu_grad(const Xmm& d, const Xmm& x_in, const Xmm& dy_in) {
    const Xmm e = scratch(0), x = scratch(1), dy = scratch(2), one = scratch(3), s = scratch(4), t = scratch(5);
    if (dy_in.getIdx() != dy.getIdx()) vmovaps(dy, dy_in);
    vmovaps(x, x_in);  // (x_in may be scratch 0)
    negated(e, x, e);
    exp(e, e, true);
    // (scratch 3 is d when d is spilled: d is written last)
    vbroadcastss(one, constant(kConstOne));
    vdivps(s, one, e);
    vsubps(t, one, s);
    vfmadd132ps(t, one, x);  // (1 − s) x + 1
    vmulps(t, s, t);
    vmulps(d, t, dy);
  }

  void instruction(const GroupInstr& ins, int at) {
    const Xmm d = destination(ins.dst);
    switch (ins.op) {
      case GroupOp::Load: load(d, ins.a); break;
      case GroupOp::Imm: vbroadcastss(d, constant(kConstImms + at)); break;
      case GroupOp::Add: vaddps(d, operand(ins.a, at, 0), operand(ins.b, at, 1)); break;
      case GroupOp::Sub: vsubps(d, operand(ins.a, at, 0), operand(ins.b, at, 1)); break;
      case GroupOp::Mul: vmulps(d, operand(ins.a, at, 0), operand(ins.b, at, 1)); break;
      case GroupOp::Div: vdivps(d, operand(ins.a, at, 0), operand(ins.b, at, 1)); break;
      case GroupOp::MulAdd: case GroupOp::MulSub: case GroupOp::NegMulAdd:
        multiply_add(ins.op, d, operand(ins.a, at, 0), operand(ins.b, at, 1), operand(ins.c, at, 2));
        break;
      case GroupOp::Where: {  // a != 0 (ordered, as the interpreter's select) ? b : c
        const Xmm a = operand(ins.a, at, 0), b = operand(ins.b, at, 1), c = operand(ins.c, at, 2);
        const Xmm t = scratch(4);
        vxorps(t, t, t);
        select_where(d, a, t, 0x0C, c, b, t);  // _CMP_NEQ_OQ
        break;
      }
      case GroupOp::Unary: unary(ins.fn, d, operand(ins.a, at, 0)); break;
      case GroupOp::UnaryGrad:
        // (the GELUs need every scratch register: dy is fetched after their derivative)
        if (ins.fn == UnaryFn::Gelu || ins.fn == UnaryFn::GeluTanh) {
          const Xmm g = ins.fn == UnaryFn::Gelu ? gelu_erf_grad(operand(ins.a, at, 0)) : gelu_tanh_grad(operand(ins.a, at, 0));
          vmulps(d, g, operand(ins.c, at, 2));
        } else {
          unary_grad(ins.fn, d, operand(ins.a, at, 0), operand(ins.b, at, 1), operand(ins.c, at, 2));
        }
        break;
      case GroupOp::Reduce: break;  // never emitted (emitted_instr())
    }
    if (!in_register(ins.dst)) vmovups(slot(ins.dst), d);
    if (ins.output >= 0) store(d, ins.output);
  }

  // A stream's store address: masked in the tail.
  Xbyak::Address stored(const Xbyak::Address& a) const { return tail_ ? a | k2 : a; }

  // Output k's elements from d, narrowed to the outputs' dtype as kx::from_float does. Operand
  // scratch 0-2 is free here (the instruction has read its operands).
  void store(const Xmm& d, int k) {
    mov(rax, ptr[rdi + (kMaxGroupInputs + k) * 8]);
    switch (layout_.dtype) {
      case DType::Float16:  // round to nearest even (imm 0), as the vector runs' F16C narrowing
        vcvtps2ph(stored(ptr[rax + rcx * 2]), d, 0);
        return;
      case DType::BFloat16:
        store_bf16(d);
        return;
      default:
        vmovups(stored(ptr[rax + rcx * 4]), d);
        return;
    }
  }

  // bfloat16: the float32 bits + 0x7fff + their bit 16, shifted down 16 (round to nearest even),
  // every NaN 0x7fc0; then the low 16 bits of each lane.
  void store_bf16(const Xmm& d) {
    const Xmm bits = scratch(0), t = scratch(1);
    vpsrld(bits, d, 16);
    vpslld(bits, bits, 31);
    vpsrld(bits, bits, 31);
    vpaddd(bits, bits, d);
    vpbroadcastd(t, constant(kConstBf16Bias));
    vpaddd(bits, bits, t);
    vpsrld(bits, bits, 16);
    if (wide_) {
      vcmpps(k3, d, d, 0x03);  // _CMP_UNORD_Q: NaN lanes
      vpbroadcastd(bits | k3, constant(kConstBf16NaN));
      vpmovdw(stored(ptr[rax + rcx * 2]), bits);
      return;
    }
    const Xmm nan = scratch(2);
    vcmpps(t, d, d, 0x03);
    vpbroadcastd(nan, constant(kConstBf16NaN));
    vblendvps(bits, bits, nan, t);
    // pack the eight 16-bit values into the low 128 bits: within each 128-bit half, then across
    vpackusdw(bits, bits, bits);
    vpermq(Xbyak::Ymm(bits.getIdx()), Xbyak::Ymm(bits.getIdx()), 0x08);
    vmovdqu(ptr[rax + rcx * 2], Xmm(bits.getIdx()));
  }

  const KernelLayout layout_;
  bool tail_ = false;  // writing the masked copy of the body
  const bool wide_;
  const int vbytes_;
  const int homes_;
};

}  // namespace

bool emitter_built() { return true; }

std::unique_ptr<GroupKernel> emit_group_kernel(const GroupProgram& p, const KernelLayout& layout) {
  if (p.reduce_at >= 0) return nullptr;
  for (const GroupInstr& ins : p.code)
    if (!emitted_instr(ins, layout.isa)) return nullptr;
  try {
    return std::make_unique<GroupKernelCode>(p, layout);
  } catch (const Xbyak::Error&) {  // (no executable memory, say): the interpreter runs the group
    return nullptr;
  }
}

#else  // built without Xbyak: the interpreter runs every group

bool emitter_built() { return false; }
std::unique_ptr<GroupKernel> emit_group_kernel(const GroupProgram&, const KernelLayout&) { return nullptr; }

#endif

}  // namespace kx
