// The element math of group programs (plan.h) written once, host and device: the CUDA interpreter
// kernel (fused_group.cu) evaluates every element with these functions, and so does its CPU twin,
// the serial reference group_reference() (group_eval.cpp), which the CPU tests compare with the
// CPU's executors on random programs. The unary functions and their derivatives are the elementwise
// family's (ops/elementwise/math.h: Unary<F>), the reductions combine as kx/reduce.h's max_nan and
// a float32 add.
//
// A run's layout (GroupEvalData) holds no addon types: raw input and output pointers with their
// dtypes, the instructions, and per part (prologue, epilogue) a coalesced broadcast index whose
// dims and strides live in one table of int64 words (group_eval_table: host memory for the
// reference, a device copy for the kernel).
#pragma once
#include <cstdint>
#include <vector>

#include "kx/dtype.h"
#include "kx/math.h"
#include "kx/reduce.h"
#include "ops/elementwise/math.h"
#include "ops/fused_group/plan.h"

namespace kx {

// One part's index: element i's offset in input k is Σ_d coord_d(i) · strides[d·kMaxGroupInputs + k].
struct GroupEvalIndex {
  int32_t rank = 0;
  const int64_t* dims = nullptr;     // rank, outermost first
  const int64_t* strides = nullptr;  // rank × kMaxGroupInputs
};

struct GroupEvalData {
  const GroupInstr* code = nullptr;
  int32_t size = 0;       // instructions
  int32_t reduce_at = -1;
  const void* in[kMaxGroupInputs] = {};
  DType in_dtype[kMaxGroupInputs] = {};
  void* out[kMaxGroupOutputs] = {};
  DType out_dtype = DType::Float32;
  GroupEvalIndex index[2];  // prologue, epilogue
  RedOp red_op = RedOp::Sum;
  bool mean = false;
  int64_t rows = 0;  // elements reduced per output element
};

// Element `at` of a group input (floating or a uint8 mask) as float32.
KX_HD float group_read(const void* base, DType t, int64_t at) {
  switch (t) {
    case DType::Float16: return to_float(static_cast<const half_t*>(base)[at]);
    case DType::BFloat16: return to_float(static_cast<const bfloat16_t*>(base)[at]);
    case DType::UInt8: return (float)static_cast<const uint8_t*>(base)[at];
    default: return static_cast<const float*>(base)[at];
  }
}

// Stores v at element `at` of a floating output, rounded once to its dtype.
KX_HD void group_write(void* base, DType t, int64_t at, float v) {
  switch (t) {
    case DType::Float16: static_cast<half_t*>(base)[at] = from_float<half_t>(v); break;
    case DType::BFloat16: static_cast<bfloat16_t*>(base)[at] = from_float<bfloat16_t>(v); break;
    default: static_cast<float*>(base)[at] = v; break;
  }
}

KX_HD int64_t group_offset(const GroupEvalIndex& ix, int k, int64_t i) {
  int64_t off = 0;
  for (int d = ix.rank - 1; d >= 0; --d) {
    const int64_t size = ix.dims[d];
    off += (i % size) * ix.strides[d * kMaxGroupInputs + k];
    i /= size;
  }
  return off;
}

// fn(x), p pow's exponent: the elementwise family's Unary<F>::f.
KX_HD float group_unary(UnaryFn fn, float x, float p) {
  float y = 0.0f;
  KX_DISPATCH_UNARY(fn, y = Unary<kFn>::f(x, p));
  return y;
}

// dy · fn'(x) with y = fn(x): the product the eager unary_backward computes.
KX_HD float group_unary_grad(UnaryFn fn, float x, float y, float dy, float p) {
  float d = 0.0f;
  KX_DISPATCH_UNARY(fn, d = dy * Unary<kFn>::df(x, y, p));
  return d;
}

// One step of a reduction: a float32 sum, or the max that propagates NaN.
KX_HD float group_combine(RedOp op, float acc, float v) { return op == RedOp::Max ? max_nan(acc, v) : acc + v; }
KX_HD float group_identity(RedOp op) { return op == RedOp::Max ? -INFINITY : 0.0f; }
// The reduced value the epilogue reads: the mean divides the row's sum by its length (0/0: NaN).
KX_HD float group_finish(const GroupEvalData& g, float acc) { return g.mean ? acc / (float)g.rows : acc; }

// Runs instructions [first, last) for element i of `part` (0 the prologue, 1 the epilogue), with
// the registers in reg; a Reduce instruction writes `reduced` (the epilogue's first instruction).
// Outputs are stored as their instruction computes them, at element i of the part's shape.
KX_HD void group_eval(const GroupEvalData& g, int first, int last, int part, int64_t i, float* reg, float reduced) {
  const GroupEvalIndex& ix = g.index[part];
  for (int at = first; at < last; ++at) {
    const GroupInstr ins = g.code[at];
    // (a Load's `a` is an input, a Reduce's a register of the prologue: neither is read here)
    const bool a_reg = ins.a >= 0 && ins.op != GroupOp::Load && ins.op != GroupOp::Reduce;
    const float a = a_reg ? reg[ins.a] : ins.imm;
    const float b = ins.b >= 0 ? reg[ins.b] : ins.imm;
    const float c = ins.c >= 0 ? reg[ins.c] : 0.0f;
    float v = 0.0f;
    switch (ins.op) {
      case GroupOp::Load: v = group_read(g.in[ins.a], g.in_dtype[ins.a], group_offset(ix, ins.a, i)); break;
      case GroupOp::Imm: v = ins.imm; break;
      case GroupOp::Add: v = a + b; break;
      case GroupOp::Sub: v = a - b; break;
      case GroupOp::Mul: v = a * b; break;
      case GroupOp::Div: v = a / b; break;
      case GroupOp::MulAdd: v = fmaf(a, b, c); break;
      case GroupOp::MulSub: v = fmaf(a, b, -c); break;
      case GroupOp::NegMulAdd: v = fmaf(-a, b, c); break;
      case GroupOp::Where: v = (a < 0.0f || a > 0.0f) ? b : c; break;  // ordered != 0: NaN selects c
      case GroupOp::Unary: v = group_unary(ins.fn, a, ins.imm); break;
      case GroupOp::UnaryGrad: v = group_unary_grad(ins.fn, a, b, c, ins.imm); break;
      case GroupOp::Reduce: v = reduced; break;
    }
    reg[ins.dst] = v;
    if (ins.output >= 0) group_write(g.out[ins.output], g.out_dtype, i, v);
  }
}

// The host side of a run's layout: the instructions and both parts' index dims and strides as
// int64 words (a GroupInstr is copied bytewise), and where each lies in them.
struct GroupEvalTable {
  std::vector<int64_t> words;
  size_t code_at = 0;
  int32_t rank[2] = {0, 0};
  size_t dims_at[2] = {0, 0}, strides_at[2] = {0, 0};
};

// The table of program p over inputs `in` (checked by check_group_inputs).
GroupEvalTable group_eval_table(const GroupProgram& p, const Inputs& in);

// A run's layout with its pointers into `table_base` (the table's words, or a device copy of them),
// reading `in` and writing `outs` (allocated by the caller: p.output_shape(k), p.dtype).
GroupEvalData group_eval_data(const GroupProgram& p, const GroupEvalTable& table, const int64_t* table_base,
                              const Inputs& in, const std::vector<Tensor>& outs);

// The CPU twin of the CUDA interpreter kernel: runs p over CPU inputs one element at a time with
// group_eval, a reduction's rows summed in order. For tests (native.fusionInterpretReference).
std::vector<Tensor> group_reference(const GroupProgram& p, const Inputs& in);

}  // namespace kx
