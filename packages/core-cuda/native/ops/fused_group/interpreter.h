// The CPU's block interpreter of group programs (plan.h; FUSION.md §4, the fallback executor),
// shared by the elementwise driver (fused_group.cpp) and the reduction driver (fused_reduce.cpp):
// a range of instructions runs over a block of at most kGroupBlock elements, every instruction over
// the whole block as one vector run of kx/simd.h (Highway, dispatched at run time), registers being
// float32 blocks in a per-thread scratch. Operands are read in place where they can be (a float32
// input that runs along the block), gathered into their register otherwise (a broadcast row, a
// half widened), and float32 outputs are written directly by the instructions that compute them. A
// one-element input is no block: its register holds the one value, which the arithmetic reads as
// it reads an immediate, and which fills a block of its own once per part for the operands that
// need a block.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "kx/broadcast.h"
#include "kx/reduce.h"
#include "ops/fused_group/plan.h"

namespace kx {

// Elements per block: registers of 4 KiB, so a group of a few registers stays in L1 and one of a
// dozen in L2, and runs long enough that an instruction's dispatch costs little (1,024 ran AdamW
// and E1 at 16M faster than 512 and 2,048). A whole number of the reductions' kSumBlock blocks.
constexpr int64_t kGroupBlock = 1024;
static_assert(kGroupBlock % kSumBlock == 0, "a block holds whole reduction blocks");

// How the inputs' elements lie along one iteration shape: one coalesced index shared by all inputs
// (size-1 dims dropped, neighbours merged where every input steps through them as one).
struct GroupIndex {
  Shape dims;  // outermost first
  std::vector<std::array<int64_t, kMaxGroupInputs>> strides;
};

// The two parts of a program: the prologue (the whole program when it has no reduction) and the epilogue.
enum class GroupPart { Prologue, Epilogue };

// A thread's registers over one part of a run (a range of blocks): each register's block, or the
// one value of a one-element input, and that input's block once filled. Its scratch is the
// thread's (thread_scratch): one part per thread at a time.
struct GroupRegisters {
  explicit GroupRegisters(const GroupProgram& p);

  float* scratch;  // p.registers blocks, then one block per input (a one-element input's value)
  const float* val[kMaxGroupRegisters] = {};
  int8_t uniform_input[kMaxGroupRegisters];  // the one-element input register r holds, or -1 (a block)
  uint32_t filled = 0;                       // per input: its block holds its value
};

// One run of a group: its inputs' data, index maps, and outputs (allocated by the constructor; the
// inputs checked by the caller, check_group_inputs).
class GroupRun {
 public:
  GroupRun(const GroupProgram& p, const Inputs& in);

  const GroupProgram& program() const { return p_; }
  std::vector<Tensor>& outputs() { return outs_; }

  // Runs instructions [first, last) of `part` over its elements [o, o + n) (n ≤ kGroupBlock);
  // `regs` receives each register's value, `reduced` holds the Reduce's values (the epilogue's).
  void run_block(GroupPart part, size_t first, size_t last, int64_t o, int64_t n, GroupRegisters& regs,
                 const float* reduced) const;

  // Register r's values as a block (a one-element input's value filled into its block).
  const float* block_of(GroupRegisters& regs, int32_t r) const;

 private:
  const float* load(const GroupIndex& index, int k, int64_t o, int64_t n, float* buf) const;
  void store(int k, int64_t o, const float* v, int64_t n) const;

  const GroupProgram& p_;
  std::array<GroupIndex, 2> index_;  // per part
  std::vector<const void*> in_data_;
  std::vector<DType> in_dtype_;
  std::array<float, kMaxGroupInputs> uniform_value_{};  // a one-element input's value as float32
  std::array<bool, kMaxGroupInputs> uniform_{};         // whether input k has one element
  std::vector<Tensor> outs_;
  std::vector<void*> out_data_;
};

// Scratch of `floats` floats for the calling thread, kept between runs (a pool worker's stays).
float* thread_scratch(size_t floats);

// The reduction driver (fused_reduce.cpp): runs a group with a reduction, filling run's outputs.
void run_fused_reduction_cpu(GroupRun& run);

}  // namespace kx
