// Fused attention on CUDA, forward and backward: validation and layout from ops/attention/plan.h
// (shared with the CPU kernel), the flash-style kernels from ops/attention/kernels.cuh (which
// describes them; the kernel lab runs the same ones), outputs from the device's caching allocator.
#include "cuda/runtime.h"
#include "kx/registry.h"
#include "ops/attention/kernels.cuh"
#include "ops/attention/plan.h"

namespace kx {
namespace {

cuda::flash::AttnArgs device_args(const AttnShape& s, const Inputs& in) {
  const Tensor &q = in[0], &mask = in[3], &bias = in[4];
  cuda::flash::AttnArgs p;
  p.s = s;
  p.q = q.raw();
  p.k = in[1].raw();
  p.v = in[2].raw();
  p.dt = q.dtype;
  p.mask = mask.defined() ? mask.data<uint8_t>() : nullptr;
  p.bias = bias.defined() ? bias.raw() : nullptr;
  p.bias_dt = bias.defined() ? bias.dtype : DType::Float32;
  return p;
}

std::vector<Tensor> attention_cuda(const Inputs& in, const Attrs& attrs) {
  const AttnShape s = plan_attention(in, attrs, "attention");
  const Tensor& q = in[0];
  Tensor out = empty({s.B, s.H, s.Tq, s.Dv}, q.dtype, q.device());
  Tensor lse = empty({s.B, s.H, s.Tq}, DType::Float32, q.device());
  cuda::flash::launch_attention_forward(device_args(s, in), out.raw(), lse.data<float>(), cuda::stream(q));
  cuda::check_launch("attention");
  return {out, lse};
}

std::vector<Tensor> attention_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const AttnShape s = plan_attention(in, attrs, "attention_backward");
  check_attention_backward(s, in);
  const Tensor &q = in[0], &k = in[1], &v = in[2], &bias = in[4], &out = in[5], &lse = in[6], &dout = in[7];
  Tensor dq = empty(q.shape, q.dtype, q.device());
  Tensor dk = empty(k.shape, k.dtype, k.device());
  Tensor dv = empty(v.shape, v.dtype, v.device());
  Tensor rowd = empty({s.B, s.H, s.Tq}, DType::Float32, q.device());
  cuda::flash::BackwardArgs g{dout.raw(), dout.dtype, out.raw(), out.dtype, lse.data<float>(), rowd.data<float>(),
                              nullptr, nullptr};
  std::vector<Tensor> grads{dq, dk, dv};
  Tensor dbias_full;
  cuda::flash::DbiasReduce reduce{};
  if (bias.defined()) {
    Tensor dbias = empty(bias.shape, bias.dtype, bias.device());
    grads.push_back(dbias);
    // The kernels write every (b, h, i, j) that some query row sees; with causal the rest must be 0.
    if (s.bs.full) {
      if (s.causal) cuda::zero(dbias);
      g.dbias = dbias.raw();
    } else {
      dbias_full = empty({s.B, s.H, s.Tq, s.Tk}, DType::Float32, q.device());
      if (s.causal) cuda::zero(dbias_full);
      g.dbias_full = dbias_full.data<float>();
      reduce.dims = {{1, 1, 1, 1}};
      for (int64_t a = 0; a < bias.dim(); ++a) reduce.dims.d[4 - bias.dim() + a] = bias.shape[a];
      reduce.dbias = dbias.raw();
      reduce.dt = dbias.dtype;
      reduce.n = dbias.numel();
    }
  }
  cuda::flash::launch_attention_backward(device_args(s, in), g, dq.raw(), dk.raw(), dv.raw(),
                                         dbias_full.defined() ? &reduce : nullptr, cuda::stream(q));
  cuda::check_launch("attention_backward");
  return grads;
}

}  // namespace

KX_REGISTER_KERNEL(attention, CUDA, attention_cuda);
KX_REGISTER_KERNEL(attention_backward, CUDA, attention_backward_cuda);

}  // namespace kx
