// The fused groups of compiled programs (kx.compile; FUSION.md): a chain of elementwise and
// broadcast ops run as one pass, written as a group program, FUSION.md's format: instructions (op,
// dst, a, b, c, imm) over virtual registers of float32 elements, an input table (the group's
// tensors, each read through the broadcast of its shape to the iteration shape) and an output table
// (a register per output, up to kMaxGroupOutputs: a group writes every value read outside it).
//
// A group may hold one reduction (FUSION.md rules 2 and 3): a Reduce instruction splits the code
// into a prologue, run over the iteration shape, whose register `a` the Reduce sums (or averages,
// or takes the max of) over each run of `rows` innermost elements, and an epilogue run over the
// reduction's output shape, which reads the reduced values as the Reduce's register. Outputs
// written by the prologue have the iteration shape, those written by the epilogue (or the Reduce
// itself) the reduction's shape; inputs loaded by the epilogue broadcast to the reduction's shape.
//
// A group is not an op of core/ops.def: the program that holds it (native/program/) validates it
// once, here, when the program is built, and runs it on each replay. The CPU runs it as machine
// code of the x86-64 emitter (emitter.h, executor.h) or through the block interpreter of
// fused_group.cpp (fused_reduce.cpp for a group with a reduction); CUDA runs it from its PTX
// (ptx_writer.h) or in an interpreter kernel (fused_group.cu; group_device.h picks by device).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kx/broadcast.h"
#include "kx/error.h"
#include "kx/registry.h"
#include "ops/elementwise/math.h"
#include "ops/fused_group/kernel_memo.h"
#include "ops/reduce/plan.h"

namespace kx {

// FUSION.md's budget of tensor arguments per group (immediates do not count).
constexpr int kMaxGroupInputs = 16;
// Outputs per group: a multi-output group writes each value read outside it (an optimizer's θ, m, v).
constexpr int kMaxGroupOutputs = 8;
constexpr int kMaxGroupRegisters = 64;
// The int64 fields of one instruction as JS sends them: op | fn << 8, dst, a, b, c, imm (float32 bits).
constexpr size_t kGroupInstrFields = 6;

// The instruction set. Registers hold float32 (halves widened, uint8 converted, on load).
//   Load      dst ← input a (read through its broadcast map)
//   Imm       dst ← imm in every element
//   Add..Div  dst ← a op b; a or b may be -1: the immediate
//   MulAdd    dst ← a·b + c; MulSub dst ← a·b − c; NegMulAdd dst ← c − a·b (one rounding with
//             FMA); b may be -1: the immediate
//   Where     dst ← a != 0 ? b : c
//   Unary     dst ← fn(a), imm pow's exponent
//   UnaryGrad dst ← c · fn'(a, b) (x = a, y = fn(x) = b, dy = c), imm pow's exponent
//   Reduce    dst ← the reduction of a over each row (at most one; it ends the prologue)
enum class GroupOp : uint8_t { Load, Imm, Add, Sub, Mul, Div, MulAdd, MulSub, NegMulAdd, Where, Unary, UnaryGrad, Reduce };
constexpr int kNumGroupOps = 13;

// A group's reduction: each output element reduces `rows` consecutive elements of the iteration
// space (the reduced axes are its innermost ones; all of them for a reduction to a scalar).
struct GroupReduction {
  RedOp op = RedOp::Sum;
  bool mean = false;  // a Sum divided by rows
  int64_t rows = 0;
  Shape shape;        // the reduction's output shape, the epilogue's iteration shape
};

struct GroupInstr {
  GroupOp op = GroupOp::Load;
  UnaryFn fn = UnaryFn::Neg;
  int32_t dst = 0, a = -1, b = -1, c = -1;
  float imm = 0.0f;
  int32_t output = -1;  // the output this instruction writes, when it is its register's last write
};

// Whether the code generators (the x86 emitter, the PTX writer) write this instruction: the
// arithmetic, the selects and four unaries. A group with any other leaves it to the interpreter.
inline bool generated_instr(const GroupInstr& ins) {
  switch (ins.op) {
    case GroupOp::Load: case GroupOp::Imm: case GroupOp::Add: case GroupOp::Sub: case GroupOp::Mul:
    case GroupOp::Div: case GroupOp::MulAdd: case GroupOp::MulSub: case GroupOp::NegMulAdd: case GroupOp::Where:
      return true;
    case GroupOp::Unary:
      return ins.fn == UnaryFn::Neg || ins.fn == UnaryFn::Sqrt || ins.fn == UnaryFn::Rsqrt || ins.fn == UnaryFn::Relu;
    case GroupOp::UnaryGrad: case GroupOp::Reduce:
      return false;
  }
  return false;
}

struct GroupProgram {
  std::vector<GroupInstr> code;
  int32_t registers = 0;
  int32_t inputs = 0;
  std::vector<int32_t> outputs;  // the register of each output
  std::vector<bool> output_reduced;  // per output: written by the epilogue (the reduction's shape)
  Shape shape;                   // the iteration shape: the prologue's (every output's without a reduction)
  DType dtype = DType::Float32;  // every output's, and every floating input's
  int32_t reduce_at = -1;        // the Reduce instruction's index, or -1
  GroupReduction reduction;
  std::vector<uint8_t> input_loads;  // per input: 1 loaded by the prologue, 2 by the epilogue
  GroupKernelSlot kernel;            // the emitter's, filled at the first run (kernel_memo.h)

  // The shape of output k.
  const Shape& output_shape(size_t k) const { return output_reduced[k] ? reduction.shape : shape; }
};

inline const char* group_op_name(GroupOp op) {
  static const char* names[kNumGroupOps] = {"load", "imm", "add", "sub", "mul", "div", "muladd", "mulsub", "negmuladd",
                                            "where", "unary", "unary_grad", "reduce"};
  return names[(int)op];
}

// Validates a group program as JS sends it (code: kGroupInstrFields integers per instruction), so
// that the interpreter needs no checks of its own: registers in range and written before they are
// read (the epilogue reads no register of the prologue but the Reduce's), operands present where
// the op needs them, inputs in the table, outputs written; with `reduction` (else null), exactly
// one Reduce, and the iteration shape `rows` times the reduction's.
inline GroupProgram group_program(const std::vector<int64_t>& code, int64_t inputs, const std::vector<int64_t>& outputs,
                                  const Shape& shape, DType dtype, const GroupReduction* reduction) {
  KX_CHECK(is_floating(dtype), DType, "fused group: outputs must be floating, got ", dtype_name(dtype));
  KX_CHECK(inputs >= 0 && inputs <= kMaxGroupInputs, Arg, "fused group: ", inputs, " inputs (at most ",
           kMaxGroupInputs, ")");
  KX_CHECK(!code.empty() && code.size() % kGroupInstrFields == 0, Arg, "fused group: code must hold ",
           kGroupInstrFields, " integers per instruction");
  KX_CHECK(!outputs.empty() && outputs.size() <= (size_t)kMaxGroupOutputs, Arg, "fused group: ", outputs.size(),
           " outputs (1 to ", kMaxGroupOutputs, ")");
  for (int64_t d : shape) KX_CHECK(d >= 0, Arg, "fused group: negative dimension in ", shape_str(shape));
  GroupProgram p;
  p.inputs = (int32_t)inputs;
  p.shape = shape;
  p.dtype = dtype;
  p.input_loads.assign((size_t)inputs, 0);
  if (reduction) {
    for (int64_t d : reduction->shape)
      KX_CHECK(d >= 0, Arg, "fused group: negative dimension in ", shape_str(reduction->shape));
    KX_CHECK(reduction->rows >= 0 && numel_of(reduction->shape) * reduction->rows == numel_of(shape), Shape,
             "fused group: reducing rows of ", reduction->rows, " of ", shape_str(shape), " does not give ",
             shape_str(reduction->shape));
    KX_CHECK(reduction->op != RedOp::Max || reduction->rows > 0 || numel_of(reduction->shape) == 0, Arg,
             "fused group: max over empty rows (max has no identity)");
    p.reduction = *reduction;
  }
  std::vector<bool> written(kMaxGroupRegisters, false);
  std::vector<bool> written_by_epilogue(kMaxGroupRegisters, false);
  const auto reg = [&](int64_t r, bool may_be_imm, const char* what, size_t at) -> int32_t {
    if (may_be_imm && r == -1) return -1;
    KX_CHECK(r >= 0 && r < kMaxGroupRegisters, Arg, "fused group: instruction ", at, ": register ", what, " = ", r,
             " out of range");
    KX_CHECK(written[(size_t)r], Arg, "fused group: instruction ", at, " reads register ", r, " before it is written");
    return (int32_t)r;
  };
  for (size_t at = 0; at < code.size() / kGroupInstrFields; ++at) {
    const int64_t* f = code.data() + at * kGroupInstrFields;
    GroupInstr ins;
    const int64_t op = f[0] & 0xff, fn = f[0] >> 8;
    KX_CHECK(op >= 0 && op < kNumGroupOps, Arg, "fused group: instruction ", at, ": unknown op ", op);
    ins.op = (GroupOp)op;
    KX_CHECK(f[5] >= 0 && f[5] <= 0xffffffffLL, Arg, "fused group: instruction ", at, ": imm must be float32 bits");
    const uint32_t bits = (uint32_t)f[5];
    std::memcpy(&ins.imm, &bits, sizeof bits);
    switch (ins.op) {
      case GroupOp::Load:
        KX_CHECK(f[2] >= 0 && f[2] < inputs, Arg, "fused group: instruction ", at, " loads input ", f[2], " of ", inputs);
        ins.a = (int32_t)f[2];
        p.input_loads[(size_t)ins.a] |= p.reduce_at < 0 ? 1 : 2;
        break;
      case GroupOp::Reduce:
        KX_CHECK(reduction && p.reduce_at < 0, Arg, "fused group: instruction ", at, ": ",
                 reduction ? "a second reduction" : "a reduction in a group without one");
        ins.a = reg(f[2], false, "a", at);
        // The epilogue starts with no register written but the Reduce's.
        std::fill(written.begin(), written.end(), false);
        p.reduce_at = (int32_t)at;
        break;
      case GroupOp::Imm:
        break;
      case GroupOp::Add: case GroupOp::Sub: case GroupOp::Mul: case GroupOp::Div:
        ins.a = reg(f[2], true, "a", at);
        ins.b = reg(f[3], true, "b", at);
        KX_CHECK(ins.a >= 0 || ins.b >= 0, Arg, "fused group: instruction ", at, " has two immediates");
        break;
      case GroupOp::MulAdd: case GroupOp::MulSub: case GroupOp::NegMulAdd:
        ins.a = reg(f[2], false, "a", at);
        ins.b = reg(f[3], true, "b", at);
        ins.c = reg(f[4], false, "c", at);
        break;
      case GroupOp::Where:
      case GroupOp::UnaryGrad:
        ins.a = reg(f[2], false, "a", at);
        ins.b = reg(f[3], false, "b", at);
        ins.c = reg(f[4], false, "c", at);
        break;
      case GroupOp::Unary:
        ins.a = reg(f[2], false, "a", at);
        break;
    }
    if (ins.op == GroupOp::Unary || ins.op == GroupOp::UnaryGrad) {
      KX_CHECK(fn >= 0 && fn <= (int64_t)UnaryFn::Pow, Arg, "fused group: instruction ", at, ": unknown function ", fn);
      ins.fn = (UnaryFn)fn;
    } else {
      KX_CHECK(fn == 0, Arg, "fused group: instruction ", at, ": only unary ops take a function");
    }
    KX_CHECK(f[1] >= 0 && f[1] < kMaxGroupRegisters, Arg, "fused group: instruction ", at, ": destination ", f[1],
             " out of range");
    ins.dst = (int32_t)f[1];
    written[(size_t)ins.dst] = true;
    written_by_epilogue[(size_t)ins.dst] = p.reduce_at >= 0;
    p.registers = std::max(p.registers, ins.dst + 1);
    p.code.push_back(ins);
  }
  KX_CHECK(!reduction || p.reduce_at >= 0, Arg, "fused group: a reduction without a Reduce instruction");
  for (size_t k = 0; k < outputs.size(); ++k) {
    const int64_t r = outputs[k];
    // (a register the prologue last wrote is an output even though the epilogue cannot read it)
    bool any = false;
    for (const GroupInstr& ins : p.code) any = any || ins.dst == r;
    KX_CHECK(r >= 0 && r < kMaxGroupRegisters && any, Arg, "fused group: output ", k, " reads register ", r,
             ", which no instruction writes");
    p.outputs.push_back((int32_t)r);
    p.output_reduced.push_back(written_by_epilogue[(size_t)r]);
    // The last write of its register stores straight into the output.
    for (size_t at = p.code.size(); at-- > 0;) {
      if (p.code[at].dst != r) continue;
      KX_CHECK(p.code[at].output < 0, Arg, "fused group: outputs ", p.code[at].output, " and ", k, " share register ", r);
      p.code[at].output = (int32_t)k;
      break;
    }
  }
  return p;
}

// The coalesced broadcast index over `shape` of the inputs that part `bit` of the program loads (1:
// the prologue, 2: the epilogue); the others, not read there, count as `shape` itself. Every
// executor reads the inputs through it.
inline CoalescedBroadcast<kMaxGroupInputs> group_input_index(const GroupProgram& p, const Shape& shape, uint8_t bit,
                                                             const Inputs& in) {
  std::array<const Shape*, kMaxGroupInputs> shapes;
  for (int k = 0; k < kMaxGroupInputs; ++k)
    shapes[(size_t)k] = k < (int)in.size() && (p.input_loads[(size_t)k] & bit) ? &in[(size_t)k].shape : &shape;
  return coalesce_broadcast<kMaxGroupInputs>(shape, shapes);
}

// A run's inputs: as many as the table, all on one device, floating of the group's dtype or a
// uint8 mask, and broadcasting to the iteration shape of each part (prologue, epilogue) that loads it.
inline void check_group_inputs(const GroupProgram& p, const Inputs& in) {
  KX_CHECK((int64_t)in.size() == p.inputs, Arg, "fused group: expected ", p.inputs, " inputs, got ", in.size());
  for (size_t k = 0; k < in.size(); ++k) {
    const Tensor& t = in[k];
    KX_CHECK(t.defined(), Arg, "fused group: input ", k, " is missing");
    KX_CHECK(t.device() == in[0].device(), Device, "fused group: input ", k, " on ", t.device().name(), ", input 0 on ",
             in[0].device().name(), " (a group runs on one device)");
    KX_CHECK(t.dtype == p.dtype || t.dtype == DType::UInt8, DType, "fused group: input ", k, " is ", dtype_name(t.dtype),
             ", the group computes ", dtype_name(p.dtype));
    for (const Shape* to : {&p.shape, &p.reduction.shape}) {
      if (!(p.input_loads[k] & (to == &p.shape ? 1 : 2))) continue;
      KX_CHECK(broadcasts_to(t.shape, *to), Shape, "fused group: input ", k, " ", shape_str(t.shape),
               " does not broadcast to ", shape_str(*to));
    }
  }
}

// Runs a group on CPU tensors (fused_group.cpp; the emitter where it can, else the interpreter:
// executor.h): its outputs, in the order of its output table.
std::vector<Tensor> run_fused_group_cpu(const GroupProgram& p, const Inputs& in);

// Element `at` of a CPU tensor's data as float32 (halves widened, integers converted).
float element_as_float(const void* base, DType t, int64_t at);

}  // namespace kx
