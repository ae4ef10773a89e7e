// The CPU's block interpreter of fused groups (interpreter.h), the entry of CPU groups (the emitter
// first, executor.h), and the interpreter's driver of groups without a reduction: the output range
// is split over the thread pool in whole blocks, and each part runs the group program a block at a
// time. The unary functions are the eager kernels' own runs (ops/elementwise/unary_runs.h), so
// they give the eager op's bits; only the multiply-adds differ from eager (one rounding where eager
// rounds twice).
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/simd.h"
#include "ops/elementwise/unary_runs.h"
#include "ops/fused_group/executor.h"
#include "ops/fused_group/interpreter.h"

namespace kx {
namespace {

// The index over `shape` of the inputs that part `bit` of the program loads (the others, not read
// there, count as `shape` itself).
GroupIndex group_index(const GroupProgram& p, const Shape& shape, uint8_t bit, const Inputs& in) {
  CoalescedBroadcast<kMaxGroupInputs> c = group_input_index(p, shape, bit, in);
  KX_CHECK((int)c.dims.size() <= kMaxIndexDims, Shape, "fused group: ", shape_str(shape), " needs more than ",
           kMaxIndexDims, " broadcast dims");
  return {std::move(c.dims), std::move(c.strides)};
}

// dst[i] = element at + i as float32, for i < n.
void widen_any(const void* base, DType t, int64_t at, float* dst, int64_t n) {
  switch (t) {
    case DType::Float32: std::memcpy(dst, static_cast<const float*>(base) + at, (size_t)n * sizeof(float)); break;
    case DType::Float16: widen(static_cast<const half_t*>(base) + at, dst, n); break;
    case DType::BFloat16: widen(static_cast<const bfloat16_t*>(base) + at, dst, n); break;
    case DType::UInt8: {
      const uint8_t* p = static_cast<const uint8_t*>(base) + at;
      for (int64_t i = 0; i < n; ++i) dst[i] = (float)p[i];
      break;
    }
    case DType::Int32: {
      const int32_t* p = static_cast<const int32_t*>(base) + at;
      for (int64_t i = 0; i < n; ++i) dst[i] = (float)p[i];
      break;
    }
  }
}

}  // namespace

float element_as_float(const void* base, DType t, int64_t at) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(base)[at];
    case DType::Float16: return to_float(static_cast<const half_t*>(base)[at]);
    case DType::BFloat16: return to_float(static_cast<const bfloat16_t*>(base)[at]);
    case DType::UInt8: return (float)static_cast<const uint8_t*>(base)[at];
    case DType::Int32: return (float)static_cast<const int32_t*>(base)[at];
  }
  return 0.0f;
}

GroupRun::GroupRun(const GroupProgram& p, const Inputs& in) : p_(p) {
  index_[0] = group_index(p, p.shape, 1, in);
  if (p.reduce_at >= 0) index_[1] = group_index(p, p.reduction.shape, 2, in);
  for (size_t k = 0; k < in.size(); ++k) {
    const Tensor& t = in[k];
    in_data_.push_back(t.raw());
    in_dtype_.push_back(t.dtype);
    uniform_[k] = t.numel() == 1;
    if (uniform_[k]) uniform_value_[k] = element_as_float(t.raw(), t.dtype, 0);
  }
  for (size_t k = 0; k < p.outputs.size(); ++k) {
    outs_.push_back(empty(p.output_shape(k), p.dtype, Device{DeviceType::CPU, 0}));
    out_data_.push_back(outs_.back().raw());
  }
}

// Input k's elements for elements [o, o + n) of an index as float32: a pointer into the input itself
// when they lie there in order (float32 along one run of the innermost dim), else gathered into buf.
const float* GroupRun::load(const GroupIndex& index, int k, int64_t o, int64_t n, float* buf) const {
  const Shape& dims = index.dims;
  const int rank = (int)dims.size();
  const int64_t inner = dims[rank - 1];
  // The multi-index of o and input k's offset there.
  int64_t idx[kMaxIndexDims];
  int64_t off = 0;
  int64_t rest = o;
  for (int d = rank - 1; d >= 0; --d) {
    idx[d] = rest % dims[d];
    rest /= dims[d];
    off += idx[d] * index.strides[d][k];
  }
  const int64_t step = index.strides[rank - 1][k];
  const DType t = in_dtype_[k];
  const void* base = in_data_[k];
  if (t == DType::Float32 && step == 1 && idx[rank - 1] + n <= inner) return static_cast<const float*>(base) + off;
  int64_t done = 0;
  while (done < n) {
    const int64_t m = std::min(inner - idx[rank - 1], n - done);
    if (step == 0) std::fill(buf + done, buf + done + m, element_as_float(base, t, off));
    else widen_any(base, t, off, buf + done, m);
    done += m;
    if (done == n) break;
    // the next row: back to its start, then carry through the outer dims
    off -= idx[rank - 1] * step;
    idx[rank - 1] = 0;
    for (int d = rank - 2; d >= 0; --d) {
      off += index.strides[d][k];
      if (++idx[d] < dims[d]) break;
      off -= index.strides[d][k] * dims[d];
      idx[d] = 0;
    }
  }
  return buf;
}

// Output k's elements [o, o + n) from float32 values.
void GroupRun::store(int k, int64_t o, const float* v, int64_t n) const {
  KX_DISPATCH_FLOAT(p_.dtype, narrow(v, static_cast<scalar_t*>(out_data_[k]) + o, n));
}

GroupRegisters::GroupRegisters(const GroupProgram& p)
    : scratch(thread_scratch((size_t)(p.registers + p.inputs) * kGroupBlock)) {
  std::fill(std::begin(uniform_input), std::end(uniform_input), (int8_t)-1);
}

const float* GroupRun::block_of(GroupRegisters& regs, int32_t r) const {
  const int k = regs.uniform_input[r];
  if (k < 0) return regs.val[r];
  float* block = regs.scratch + (int64_t)(p_.registers + k) * kGroupBlock;
  if (!(regs.filled >> k & 1u)) {
    std::fill(block, block + kGroupBlock, uniform_value_[(size_t)k]);
    regs.filled |= 1u << k;
  }
  return block;
}

void GroupRun::run_block(GroupPart part, size_t first, size_t last, int64_t o, int64_t n, GroupRegisters& regs,
                         const float* reduced) const {
  const GroupIndex& index = index_[part == GroupPart::Prologue ? 0 : 1];
  const bool direct = p_.dtype == DType::Float32;
  const float** val = regs.val;
  // An arithmetic operand: register r's block (stride 1), or one value read as an immediate is read
  // (stride 0): a one-element input's register, or the instruction's immediate where r is -1.
  const auto operand = [&](int32_t r, const GroupInstr& ins, int64_t& stride) -> const float* {
    stride = r >= 0 && regs.uniform_input[r] < 0 ? 1 : 0;
    return r >= 0 ? val[r] : &ins.imm;
  };
  for (size_t at = first; at < last; ++at) {
    const GroupInstr& ins = p_.code[at];
    float* buf = regs.scratch + (int64_t)ins.dst * kGroupBlock;
    float* dst = (direct && ins.output >= 0) ? static_cast<float*>(out_data_[ins.output]) + o : buf;
    bool stored = direct;  // whether dst already is the output
    int8_t uniform = -1;
    switch (ins.op) {
      case GroupOp::Load:  // (`a` is an input's index, not a register)
        if (uniform_[(size_t)ins.a]) {
          uniform = (int8_t)ins.a;
          dst = const_cast<float*>(&uniform_value_[(size_t)ins.a]);
        } else {
          dst = const_cast<float*>(load(index, ins.a, o, n, buf));
        }
        stored = false;
        break;
      case GroupOp::Reduce:  // (run by the epilogue only: the reduction driver reduced the prologue's a)
        dst = const_cast<float*>(reduced + o);
        stored = false;
        break;
      case GroupOp::Imm:
        std::fill(dst, dst + n, ins.imm);
        break;
      case GroupOp::Add: case GroupOp::Sub: case GroupOp::Mul: case GroupOp::Div: {
        static constexpr simd::BinaryOp ops[] = {simd::BinaryOp::Add, simd::BinaryOp::Sub, simd::BinaryOp::Mul,
                                                 simd::BinaryOp::Div};
        int64_t sa, sb;
        const float* a = operand(ins.a, ins, sa);
        const float* b = operand(ins.b, ins, sb);
        simd::binary(ops[(int)ins.op - (int)GroupOp::Add], a, sa, b, sb, dst, n);
        break;
      }
      case GroupOp::MulAdd: case GroupOp::MulSub: case GroupOp::NegMulAdd: {
        static constexpr simd::MulAddOp ops[] = {simd::MulAddOp::MulAdd, simd::MulAddOp::MulSub,
                                                 simd::MulAddOp::NegMulAdd};
        int64_t sb;
        const float* b = operand(ins.b, ins, sb);
        simd::mul_add(ops[(int)ins.op - (int)GroupOp::MulAdd], block_of(regs, ins.a), b, sb, block_of(regs, ins.c),
                      dst, n);
        break;
      }
      case GroupOp::Where:
        simd::select(block_of(regs, ins.a), block_of(regs, ins.b), block_of(regs, ins.c), dst, n);
        break;
      case GroupOp::Unary:
        // (the square roots at the target's width: the eager loop's bits, faster)
        if (ins.fn == UnaryFn::Sqrt) simd::sqrt(block_of(regs, ins.a), dst, n);
        else if (ins.fn == UnaryFn::Rsqrt) simd::rsqrt(block_of(regs, ins.a), dst, n);
        else KX_DISPATCH_UNARY(ins.fn, unary_float_run<kFn>(block_of(regs, ins.a), dst, n, ins.imm));
        break;
      case GroupOp::UnaryGrad:
        KX_DISPATCH_UNARY(ins.fn, unary_backward_float_run<kFn>(block_of(regs, ins.a), block_of(regs, ins.b),
                                                                block_of(regs, ins.c), dst, n, ins.imm));
        break;
    }
    val[ins.dst] = dst;
    regs.uniform_input[ins.dst] = uniform;
    if (ins.output >= 0 && !stored) store(ins.output, o, block_of(regs, ins.dst), n);
  }
}

float* thread_scratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

std::vector<Tensor> run_fused_group_cpu(const GroupProgram& p, const Inputs& in) {
  check_group_inputs(p, in);
  if (std::optional<std::vector<Tensor>> outs = run_emitted_group(p, in)) return std::move(*outs);
  GroupRun run(p, in);
  if (p.reduce_at >= 0) {
    run_fused_reduction_cpu(run);
    return std::move(run.outputs());
  }
  const int64_t n = numel_of(p.shape);
  if (n == 0) return std::move(run.outputs());
  // A part is whole blocks, about 2^16 instruction-elements of work (transcendentals cost more, but
  // a part this size is already long against the pool's wake-up).
  const int64_t blocks = (n + kGroupBlock - 1) / kGroupBlock;
  const int64_t grain = (cpu::grain_for((int64_t)p.code.size(), 1 << 16) + kGroupBlock - 1) / kGroupBlock;
  cpu::parallel_for(blocks, grain, [&](int64_t first, int64_t last) {
    GroupRegisters regs(p);
    const int64_t end = std::min(n, last * kGroupBlock);
    for (int64_t o = first * kGroupBlock; o < end; o += kGroupBlock)
      run.run_block(GroupPart::Prologue, 0, p.code.size(), o, std::min(kGroupBlock, end - o), regs, nullptr);
  });
  return std::move(run.outputs());
}

}  // namespace kx
