// softmax, log_softmax and softmax_backward on CUDA, along any axis: validation from
// ops/softmax/plan.h and the kernels of ops/softmax/kernels.cuh (row math from kx/softmax.h), both
// shared with the CPU twin.
#include "cuda/runtime.h"
#include "ops/softmax/kernels.cuh"
#include "ops/softmax/plan.h"

namespace kx {
namespace {

template <bool Log> std::vector<Tensor> softmax_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const SoftmaxLayout l = softmax_layout(Log ? "log_softmax" : "softmax", x, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_softmax(x.data<scalar_t>(), y.data<scalar_t>(), l.outer, l.C, l.inner, Log,
                                                  cuda::stream(x)));
  cuda::check_launch(Log ? "log_softmax" : "softmax");
  return {y};
}

std::vector<Tensor> softmax_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &y = in[0], &dy = in[1];
  const SoftmaxLayout l = softmax_backward_layout(y, dy, attrs);
  const bool log = attrs.flag("log", false);
  Tensor dx = empty(y.shape, y.dtype, y.device());
  KX_DISPATCH_FLOAT(y.dtype, cuda::launch_softmax_backward(y.data<scalar_t>(), dy.data<scalar_t>(),
                                                           dx.data<scalar_t>(), l.outer, l.C, l.inner, log,
                                                           cuda::stream(y)));
  cuda::check_launch("softmax_backward");
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(softmax, CUDA, softmax_cuda<false>);
KX_REGISTER_KERNEL(log_softmax, CUDA, softmax_cuda<true>);
KX_REGISTER_KERNEL(softmax_backward, CUDA, softmax_backward_cuda);

}  // namespace kx
