// LayerNorm over the last axis on CUDA, the twin of layer_norm.cpp: validation from
// layer_norm_plan.h, kernels from norm_kernels.cuh (element math from kx/norm.h), statistics in
// float32 for every dtype, dgamma/dbeta reduced through per-block partials in a fixed order.
#include "cuda/runtime.h"
#include "ops/layer_norm_plan.h"
#include "ops/norm_kernels.cuh"

namespace kx {
namespace {

std::vector<Tensor> layer_norm_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &gamma = in[1], &beta = in[2];
  const NormPlan p = layer_norm_plan(x, gamma, beta, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor mean = empty(p.lead, DType::Float32, x.device());
  Tensor rstd = empty(p.lead, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_layer_norm(
                                 x.data<scalar_t>(), gamma.defined() ? gamma.data<scalar_t>() : nullptr,
                                 beta.defined() ? beta.data<scalar_t>() : nullptr, y.data<scalar_t>(),
                                 mean.data<float>(), rstd.data<float>(), p.rows, p.d, (float)p.eps, cuda::stream(x)));
  cuda::check_launch("layer_norm");
  return {y, mean, rstd};
}

std::vector<Tensor> layer_norm_backward_cuda(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &x = in[1], &gamma = in[2], &mean = in[3], &rstd = in[4];
  const NormPlan p = layer_norm_backward_plan(dy, x, gamma, mean, rstd);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dgamma = empty({p.d}, x.dtype, x.device());
  Tensor dbeta = empty({p.d}, x.dtype, x.device());
  Tensor partials = empty({cuda::norm_partial_blocks(p.rows) * 2 * p.d}, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_layer_norm_backward(
                                 dy.data<scalar_t>(), x.data<scalar_t>(),
                                 gamma.defined() ? gamma.data<scalar_t>() : nullptr, mean.data<float>(),
                                 rstd.data<float>(), dx.data<scalar_t>(), dgamma.data<scalar_t>(),
                                 dbeta.data<scalar_t>(), partials.data<float>(), p.rows, p.d, cuda::stream(x)));
  cuda::check_launch("layer_norm_backward");
  return {dx, dgamma, dbeta};
}

}  // namespace

KX_REGISTER_KERNEL(layer_norm, CUDA, layer_norm_cuda);
KX_REGISTER_KERNEL(layer_norm_backward, CUDA, layer_norm_backward_cuda);

}  // namespace kx
