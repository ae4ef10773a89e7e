// A compiled program (kx.compile, FUSION.md §5): the ops a traced function ran, as a flat list of
// steps in their order, replayed natively in one call. A step is an op of the table (run through
// the registry, kx::run, exactly as an eager call) or a fused group (ops/fused_group/, on the CPU or CUDA).
// Values are numbered in order: the program's inputs (the function's tensor arguments and the
// tensors it captured, passed anew on each run, so a parameter updated in place is read as it is
// now), then its constants (tensors the function made without an op, such as scalars; held by the
// program), then every step's outputs. Each value is released after its last use, so a replay
// holds no more intermediates than the eager run did.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kx/registry.h"
#include "kx/tensor.h"
#include "ops/fused_group/plan.h"

namespace kx {

struct ProgramStep {
  const OpDef* op = nullptr;                   // an op of the table, or
  std::shared_ptr<const GroupProgram> group;   // a fused group (exactly one of the two)
  Attrs attrs;                                 // the op's
  std::vector<int32_t> inputs;                 // value ids; -1 for an absent optional input
  int32_t outputs = 0;                         // how many values the step makes
};

// New attributes for one op step of one run.
struct AttrPatch {
  int64_t step;
  Attrs attrs;
};

class Program {
 public:
  // E_ARG when a step reads a value not yet made, or an output names no value.
  Program(int32_t inputs, std::vector<Tensor> constants, std::vector<ProgramStep> steps, std::vector<int32_t> outputs);

  int32_t inputs() const { return inputs_; }
  size_t steps() const { return steps_.size(); }

  // The op a step runs, whose attributes a patch may replace: E_ARG for a step that does not exist
  // or is a fused group.
  const OpDef& patchable_op(int64_t step) const;

  // Runs every step on these inputs (E_ARG on a count that is not inputs()); returns the outputs.
  // `patches` replace the attributes of the op steps they name for this run only (the attributes a
  // trace marked as recomputed at every call: an optimizer's step count and learning rate).
  // `step_ns`, when given (steps() slots), receives each step's wall time in nanoseconds (a CUDA
  // step's: its launch). Safe to call from several threads at once: a run's values are its own.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, const std::vector<AttrPatch>& patches = {},
                          double* step_ns = nullptr) const;

 private:
  int32_t inputs_;
  std::vector<Tensor> constants_;
  std::vector<ProgramStep> steps_;
  std::vector<int32_t> first_output_;           // per step: the id of its first output
  std::vector<std::vector<int32_t>> release_;   // per step: the values dead after it
  std::vector<int32_t> outputs_;
  int32_t values_ = 0;
};

}  // namespace kx
