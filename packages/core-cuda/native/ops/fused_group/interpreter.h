// The CPU's block interpreter of group programs (plan.h; FUSION.md §4, the fallback executor),
// shared by the elementwise driver (fused_group.cpp) and the reduction driver (fused_reduce.cpp):
// a range of instructions runs over a block of at most kGroupBlock elements, every instruction over
// the whole block as one vector run of kx/simd.h (Highway, dispatched at run time), registers being
// float32 blocks in a per-thread scratch. Operands are read in place where they can be (a float32
// input that runs along the block), gathered into their register otherwise (a broadcast row, a
// scalar, a half widened), and float32 outputs are written directly by the instruction that
// computes them.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "kx/broadcast.h"
#include "kx/reduce.h"
#include "ops/fused_group/plan.h"

namespace kx {

// Elements per block: registers of 2 KiB, so a group of a dozen registers stays in L1/L2, and long
// enough runs for the vector loops. A whole number of the reductions' kSumBlock blocks.
constexpr int64_t kGroupBlock = 512;
static_assert(kGroupBlock % kSumBlock == 0, "a block holds whole reduction blocks");

// How the inputs' elements lie along one iteration shape: one coalesced index shared by all inputs
// (size-1 dims dropped, neighbours merged where every input steps through them as one).
struct GroupIndex {
  Shape dims;  // outermost first
  std::vector<std::array<int64_t, kMaxGroupInputs>> strides;
};

// The two parts of a program: the prologue (the whole program when it has no reduction) and the epilogue.
enum class GroupPart { Prologue, Epilogue };

// One run of a group: its inputs' data, index maps, and outputs (allocated by the constructor; the
// inputs checked by the caller, check_group_inputs).
class GroupRun {
 public:
  GroupRun(const GroupProgram& p, const Inputs& in);

  const GroupProgram& program() const { return p_; }
  std::vector<Tensor>& outputs() { return outs_; }

  // Runs instructions [first, last) of `part` over its elements [o, o + n) (n ≤ kGroupBlock);
  // `val` receives each register's block, `reduced` holds the Reduce's values (the epilogue's).
  void run_block(GroupPart part, size_t first, size_t last, int64_t o, int64_t n, float* scratch, const float** val,
                 const float* reduced) const;

 private:
  const float* load(const GroupIndex& index, int k, int64_t o, int64_t n, float* buf) const;
  void store(int k, int64_t o, const float* v, int64_t n) const;

  const GroupProgram& p_;
  std::array<GroupIndex, 2> index_;  // per part
  std::vector<const void*> in_data_;
  std::vector<DType> in_dtype_;
  std::vector<Tensor> outs_;
  std::vector<void*> out_data_;
};

// Scratch of `floats` floats for the calling thread, kept between runs (a pool worker's stays).
float* thread_scratch(size_t floats);

// The reduction driver (fused_reduce.cpp): runs a group with a reduction, filling run's outputs.
void run_fused_reduction_cpu(GroupRun& run);

}  // namespace kx
