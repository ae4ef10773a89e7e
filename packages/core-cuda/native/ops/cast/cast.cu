// cast on CUDA: one pass, the element conversion from ops/cast/math.h (the CPU's, so the bits
// match); a cast to the same dtype is a copy.
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "ops/cast/math.h"
#include "ops/cast/plan.h"

namespace kx {
namespace {

template <class From, class To>
__global__ void cast_kernel(const From* __restrict__ src, To* __restrict__ dst, int64_t n) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride) dst[i] = CastTo<To>::from(src[i]);
}

std::vector<Tensor> cast_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const DType to = cast_target(attrs);
  Tensor y = empty(x.shape, to, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  if (to == x.dtype) {
    cuda::check(cudaMemcpyAsync(y.raw(), x.raw(), y.nbytes(), cudaMemcpyDeviceToDevice, stream), "cast");
    return {y};
  }
  KX_DISPATCH_ALL(x.dtype, {
    using From = scalar_t;
    KX_DISPATCH_ALL(to, cast_kernel<<<cuda::blocks_for(n, cuda::kThreads), cuda::kThreads, 0, stream>>>(
                            x.data<From>(), y.data<scalar_t>(), n));
  });
  cuda::check_launch("cast");
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(cast, CUDA, cast_cuda);

}  // namespace kx
