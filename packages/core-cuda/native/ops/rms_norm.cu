// RMSNorm over the last axis on CUDA, the twin of rms_norm.cpp: validation from rms_norm_plan.h,
// kernels from norm_kernels.cuh (element math from kx/norm.h), rstd in float32 for every dtype,
// dgamma reduced through per-block partials in a fixed order.
#include "cuda/runtime.h"
#include "ops/norm_kernels.cuh"
#include "ops/rms_norm_plan.h"

namespace kx {
namespace {

std::vector<Tensor> rms_norm_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &gamma = in[1];
  const NormPlan p = rms_norm_plan(x, gamma, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor rstd = empty(p.lead, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_rms_norm(x.data<scalar_t>(),
                                                   gamma.defined() ? gamma.data<scalar_t>() : nullptr,
                                                   y.data<scalar_t>(), rstd.data<float>(), p.rows, p.d,
                                                   (float)p.eps, cuda::stream(x)));
  cuda::check_launch("rms_norm");
  return {y, rstd};
}

std::vector<Tensor> rms_norm_backward_cuda(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &x = in[1], &gamma = in[2], &rstd = in[3];
  const NormPlan p = rms_norm_backward_plan(dy, x, gamma, rstd);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dgamma = empty({p.d}, x.dtype, x.device());
  Tensor partials = empty({cuda::norm_partial_blocks(p.rows) * p.d}, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_rms_norm_backward(
                                 dy.data<scalar_t>(), x.data<scalar_t>(),
                                 gamma.defined() ? gamma.data<scalar_t>() : nullptr, rstd.data<float>(),
                                 dx.data<scalar_t>(), dgamma.data<scalar_t>(), partials.data<float>(), p.rows, p.d,
                                 cuda::stream(x)));
  cuda::check_launch("rms_norm_backward");
  return {dx, dgamma};
}

}  // namespace

KX_REGISTER_KERNEL(rms_norm, CUDA, rms_norm_cuda);
KX_REGISTER_KERNEL(rms_norm_backward, CUDA, rms_norm_backward_cuda);

}  // namespace kx
