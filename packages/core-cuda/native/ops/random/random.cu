// Random ops on CUDA: dropout with the CPU's Philox mask (kx/philox.h). Each thread draws one
// Philox block, the four random elements it covers, so every element gets the word the CPU gives it
// for the same (seed, offset) and the outputs match the CPU's bit for bit.
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/philox.h"
#include "ops/random/plan.h"

namespace kx {
namespace {

// Tensor element i is random element offset + i: word (offset + i) % 4 of block (offset + i) / 4.
template <class T>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, DropoutParams dp) {
  const uint64_t first = dp.offset >> 2;
  const int64_t blocks = (int64_t)(((dp.offset + (uint64_t)n - 1) >> 2) - first + 1);
  const int64_t stride = cuda::grid_stride();
  for (int64_t t = cuda::thread_index(); t < blocks; t += stride) {
    const uint64_t block = first + (uint64_t)t;
    const Philox4 r = philox_block(dp.seed, block);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const uint64_t e = 4 * block + (uint64_t)lane;
      if (e < dp.offset || e - dp.offset >= (uint64_t)n) continue;
      const int64_t i = (int64_t)(e - dp.offset);
      y[i] = from_float<T>(dropout_element(to_float(x[i]), philox_uniform(r.v[lane]), dp.p, dp.scale));
    }
  }
}

std::vector<Tensor> dropout_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const DropoutParams dp = dropout_params(attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {y};
  const int64_t blocks = n / 4 + 2;  // Philox blocks the elements can touch, at most
  KX_DISPATCH_FLOAT(x.dtype, {
    dropout_kernel<<<cuda::blocks_for(blocks, cuda::kThreads), cuda::kThreads, 0, cuda::stream(y)>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), n, dp);
  });
  cuda::check_launch("dropout");
  return {y};
}

__global__ void normal_kernel(float* __restrict__ y, int64_t n, PhiloxKey np) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride) y[i] = philox_normal(np.seed, np.offset + (uint64_t)i);
}

std::vector<Tensor> normal_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& like = in[0];
  const int64_t n = like.numel();
  const PhiloxKey np = philox_key(attrs, "normal", n);
  Tensor y = empty(like.shape, DType::Float32, like.device());
  if (n == 0) return {y};
  normal_kernel<<<cuda::blocks_for(n, cuda::kThreads), cuda::kThreads, 0, cuda::stream(y)>>>(y.data<float>(), n, np);
  cuda::check_launch("normal");
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(dropout, CUDA, dropout_cuda);
KX_REGISTER_KERNEL(normal, CUDA, normal_cuda);

}  // namespace kx
