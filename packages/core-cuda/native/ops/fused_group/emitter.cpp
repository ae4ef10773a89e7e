// The code generator of the x86-64 emitter (emitter.h), on Xbyak: one loop over whole vectors
// each iteration running the program on one vector of elements. Every operation is one IEEE
// instruction (the multiply-adds one FMA, as the interpreter's), so an emitted group gives the
// interpreter's bits. Halves are widened on load (F16C, or a shift for bfloat16) and narrowed on
// store as kx/dtype.h's from_float (round to nearest even; every bfloat16 NaN 0x7fc0), values
// staying float32 in between, as in the interpreter. Instructions it does not emit (the
// transcendentals, pow, the unary derivatives) leave the whole group to the interpreter.
//
// Calling convention: System V x86-64 (rdi = streams, rsi = constants, rdx = n); rcx counts
// elements, rax holds a stream pointer, r8 the tail's mask bits; every register used is
// caller-saved. With AVX-512 the program is written twice: the loop's body, then a copy for the
// last partial vector whose loads and stores are masked by k2 (a masked load does not fault on the
// lanes it leaves out).
#include "ops/fused_group/emitter.h"

#if KX_WITH_XBYAK
#include <xbyak/xbyak.h>
#endif

namespace kx {

#if KX_WITH_XBYAK
namespace {

using Xbyak::Xmm;

// Vector registers 0..4 are scratch: three operands fetched from the stack or the constants, a
// spilled destination, and a temporary (a zero, a mask); the program's registers live in the rest,
// in order, and those beyond them in stack slots.
constexpr int kScratch = 5;

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
        vbroadcastss(t, constant(kConstSign));
        vxorps(d, a, t);
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
      default:
        return;
    }
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
        if (wide_) {
          vcmpps(k1, a, t, 0x0C);  // _CMP_NEQ_OQ
          vblendmps(d | k1, c, b);
        } else {
          vcmpps(t, a, t, 0x0C);
          vblendvps(d, c, b, t);
        }
        break;
      }
      case GroupOp::Unary: unary(ins.fn, d, operand(ins.a, at, 0)); break;
      case GroupOp::UnaryGrad: case GroupOp::Reduce: break;  // never emitted (generated_instr())
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
    if (!generated_instr(ins)) return nullptr;
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
