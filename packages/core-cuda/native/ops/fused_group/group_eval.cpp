// A group run's layout (group_eval.h), shared by the CUDA interpreter kernel's host side
// (fused_group.cu) and the CPU reference, and the reference itself: group_eval one element at a
// time, a reduction's rows folded in order.
#include "ops/fused_group/group_eval.h"

#include <cstring>
#include <type_traits>

namespace kx {
namespace {

// Appends group_input_index's dims and strides to the table; returns its rank.
int32_t append_index(GroupEvalTable& t, int part, const GroupProgram& p, const Shape& shape, uint8_t bit,
                     const Inputs& in) {
  const CoalescedBroadcast<kMaxGroupInputs> c = group_input_index(p, shape, bit, in);
  t.dims_at[part] = t.words.size();
  t.words.insert(t.words.end(), c.dims.begin(), c.dims.end());
  t.strides_at[part] = t.words.size();
  for (const auto& s : c.strides) t.words.insert(t.words.end(), s.begin(), s.end());
  return (int32_t)c.dims.size();
}

}  // namespace

GroupEvalTable group_eval_table(const GroupProgram& p, const Inputs& in) {
  static_assert(std::is_trivially_copyable<GroupInstr>::value, "instructions are copied bytewise");
  GroupEvalTable t;
  const size_t code_bytes = p.code.size() * sizeof(GroupInstr);
  t.words.resize((code_bytes + sizeof(int64_t) - 1) / sizeof(int64_t));
  std::memcpy(t.words.data(), p.code.data(), code_bytes);
  t.rank[0] = append_index(t, 0, p, p.shape, 1, in);
  if (p.reduce_at >= 0) t.rank[1] = append_index(t, 1, p, p.reduction.shape, 2, in);
  return t;
}

GroupEvalData group_eval_data(const GroupProgram& p, const GroupEvalTable& table, const int64_t* table_base,
                              const Inputs& in, const std::vector<Tensor>& outs) {
  GroupEvalData g;
  g.code = reinterpret_cast<const GroupInstr*>(table_base + table.code_at);
  g.size = (int32_t)p.code.size();
  g.reduce_at = p.reduce_at;
  for (size_t k = 0; k < in.size(); ++k) {
    g.in[k] = in[k].raw();
    g.in_dtype[k] = in[k].dtype;
  }
  for (size_t k = 0; k < outs.size(); ++k) g.out[k] = outs[k].raw();
  g.out_dtype = p.dtype;
  for (int part = 0; part < 2; ++part) {
    g.index[part].rank = table.rank[part];
    g.index[part].dims = table_base + table.dims_at[part];
    g.index[part].strides = table_base + table.strides_at[part];
  }
  g.red_op = p.reduction.op;
  g.mean = p.reduction.mean;
  g.rows = p.reduction.rows;
  return g;
}

std::vector<Tensor> group_reference(const GroupProgram& p, const Inputs& in) {
  check_group_inputs(p, in);
  for (const Tensor& t : in)
    KX_CHECK(t.device().type == DeviceType::CPU, Device, "fused group reference: input on ", t.device().name(),
             " (it runs on the CPU)");
  std::vector<Tensor> outs;
  for (size_t k = 0; k < p.outputs.size(); ++k) outs.push_back(empty(p.output_shape(k), p.dtype, Device{DeviceType::CPU, 0}));
  const GroupEvalTable table = group_eval_table(p, in);
  const GroupEvalData g = group_eval_data(p, table, table.words.data(), in, outs);
  float reg[kMaxGroupRegisters] = {};
  if (p.reduce_at < 0) {
    for (int64_t i = 0; i < numel_of(p.shape); ++i) group_eval(g, 0, g.size, 0, i, reg, 0.0f);
    return outs;
  }
  const int32_t summed = p.code[(size_t)p.reduce_at].a;
  for (int64_t r = 0; r < numel_of(p.reduction.shape); ++r) {
    float acc = group_identity(g.red_op);
    for (int64_t j = 0; j < g.rows; ++j) {
      group_eval(g, 0, g.reduce_at, 0, r * g.rows + j, reg, 0.0f);
      acc = group_combine(g.red_op, acc, reg[summed]);
    }
    group_eval(g, g.reduce_at, g.size, 1, r, reg, group_finish(g, acc));
  }
  return outs;
}

}  // namespace kx
