#include "program/program.h"

#include <algorithm>
#include <chrono>

#include "kx/error.h"
#include "ops/fused_group/group_device.h"

namespace kx {

Program::Program(int32_t inputs, std::vector<Tensor> constants, std::vector<ProgramStep> steps,
                 std::vector<int32_t> outputs)
    : inputs_(inputs), constants_(std::move(constants)), steps_(std::move(steps)), outputs_(std::move(outputs)) {
  KX_CHECK(inputs_ >= 0, Arg, "program: negative input count");
  values_ = inputs_ + (int32_t)constants_.size();
  // The last step that reads each value (-1: none); the program's outputs live to the end.
  std::vector<int32_t> last_use;
  last_use.assign((size_t)values_, -1);
  for (size_t s = 0; s < steps_.size(); ++s) {
    const ProgramStep& step = steps_[s];
    KX_CHECK((step.op != nullptr) != (step.group != nullptr), Arg, "program: step ", s, " must be one op or one group");
    KX_CHECK(step.outputs >= 0, Arg, "program: step ", s, " has a negative output count");
    KX_CHECK(!step.group || step.outputs == (int32_t)step.group->outputs.size(), Arg, "program: step ", s,
             " makes ", step.outputs, " values, its group writes ", step.group->outputs.size());
    for (int32_t id : step.inputs) {
      KX_CHECK(id >= -1 && id < values_, Arg, "program: step ", s, " reads value ", id, " before it is made");
      if (id >= 0) last_use[(size_t)id] = (int32_t)s;
    }
    first_output_.push_back(values_);
    values_ += step.outputs;
    last_use.resize((size_t)values_, (int32_t)s);  // an output nothing reads dies with its step
  }
  for (int32_t id : outputs_) {
    KX_CHECK(id >= 0 && id < values_, Arg, "program: output value ", id, " does not exist");
    last_use[(size_t)id] = (int32_t)steps_.size();
  }
  release_.resize(steps_.size());
  // Inputs belong to the caller and constants to the program: only step outputs are released.
  for (int32_t id = inputs_ + (int32_t)constants_.size(); id < values_; ++id) {
    const int32_t s = last_use[(size_t)id];
    if (s < (int32_t)steps_.size()) release_[(size_t)s].push_back(id);
  }
}

const OpDef& Program::patchable_op(int64_t step) const {
  KX_CHECK(step >= 0 && step < (int64_t)steps_.size(), Arg, "program: no step ", step, " (", steps_.size(), " steps)");
  const OpDef* op = steps_[(size_t)step].op;
  KX_CHECK(op != nullptr, Arg, "program: step ", step, " is a fused group, whose attributes cannot change");
  return *op;
}

std::vector<Tensor> Program::run(const std::vector<Tensor>& inputs, const std::vector<AttrPatch>& patches,
                                 double* step_ns) const {
  KX_CHECK((int32_t)inputs.size() == inputs_, Arg, "program: expected ", inputs_, " inputs, got ", inputs.size());
  std::vector<const Attrs*> attrs(steps_.size(), nullptr);
  for (const AttrPatch& p : patches) {
    patchable_op(p.step);
    attrs[(size_t)p.step] = &p.attrs;
  }
  std::vector<Tensor> values((size_t)values_);
  std::copy(inputs.begin(), inputs.end(), values.begin());
  std::copy(constants_.begin(), constants_.end(), values.begin() + inputs_);
  Inputs in;
  for (size_t s = 0; s < steps_.size(); ++s) {
    const ProgramStep& step = steps_[s];
    in.assign(step.inputs.size(), Tensor{});
    for (size_t i = 0; i < step.inputs.size(); ++i)
      if (step.inputs[i] >= 0) in[i] = values[(size_t)step.inputs[i]];
    const auto started = step_ns ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    std::vector<Tensor> outs =
        step.op ? kx::run(*step.op, in, attrs[s] ? *attrs[s] : step.attrs) : run_fused_group(*step.group, in);
    KX_CHECK((int32_t)outs.size() == step.outputs, Internal, "program: step ", s, " (",
             step.op ? step.op->name : std::string("fused group"), ") made ", outs.size(), " outputs, the trace ",
             step.outputs);
    for (int32_t k = 0; k < step.outputs; ++k) values[(size_t)(first_output_[s] + k)] = std::move(outs[(size_t)k]);
    for (int32_t id : release_[s]) values[(size_t)id] = Tensor{};
    if (step_ns) step_ns[s] = (double)std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count();
  }
  std::vector<Tensor> result;
  result.reserve(outputs_.size());
  for (int32_t id : outputs_) result.push_back(values[(size_t)id]);
  return result;
}

}  // namespace kx
