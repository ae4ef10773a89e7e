// RoPE (interleaved pairs) on CUDA, in two kernels like the CPU's two loops: the cos/sin of every
// (position entry, pair) into a float32 table (ops/rope/math.h's theta and angle), then one thread
// per pair of x rotating it with its row's table entry. A row's entry comes from the positions
// broadcast against x's leading axes (kx/broadcast.h), as the CPU's strides give it.
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/broadcast.h"
#include "ops/rope/math.h"
#include "ops/rope/plan.h"

namespace kx {
namespace {

// cos_t[p, i] and sin_t[p, i] (sin negated for the inverse) for entries p and pairs i < half.
__global__ void rope_table_kernel(const int32_t* __restrict__ positions, int64_t entries, int64_t half, int64_t d,
                                  float sign, float* __restrict__ cos_t, float* __restrict__ sin_t) {
  const int64_t n = entries * half;
  const int64_t stride = cuda::grid_stride();
  for (int64_t k = cuda::thread_index(); k < n; k += stride) {
    const int64_t p = k / half, i = k - p * half;
    const int32_t position = positions ? positions[p] : (int32_t)p;
    float s, c;
    sincosf(rope_angle(position, rope_theta(i, d)), &s, &c);
    cos_t[k] = c;
    sin_t[k] = sign * s;
  }
}

template <class T>
__global__ void rope_rotate_kernel(const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ cos_t,
                                   const float* __restrict__ sin_t, int64_t rows, int64_t half,
                                   BroadcastIndex<1> entry_of_row) {
  const int64_t n = rows * half;
  const int64_t stride = cuda::grid_stride();
  for (int64_t k = cuda::thread_index(); k < n; k += stride) {
    const int64_t r = k / half, i = k - r * half;
    int64_t entry;
    entry_of_row.offsets(r, &entry);
    const int64_t t = entry * half + i;
    float y0, y1;
    rope_rotate_pair(to_float(x[2 * k]), to_float(x[2 * k + 1]), cos_t[t], sin_t[t], false, &y0, &y1);
    y[2 * k] = from_float<T>(y0);
    y[2 * k + 1] = from_float<T>(y1);
  }
}

std::vector<Tensor> rope_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &positions = in[1];
  const RopePlan plan = rope_plan(x, positions, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t half = plan.d / 2;
  if (plan.rows == 0 || half == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  Tensor table = empty({2, plan.entries, half}, DType::Float32, y.device());
  float* cos_t = table.data<float>();
  float* sin_t = cos_t + plan.entries * half;
  rope_table_kernel<<<cuda::blocks_for(plan.entries * half, cuda::kThreads), cuda::kThreads, 0, stream>>>(
      positions.defined() ? positions.data<int32_t>() : nullptr, plan.entries, half, plan.d,
      plan.inverse ? -1.0f : 1.0f, cos_t, sin_t);
  cuda::check_launch("rope");
  const BroadcastIndex<1> entry_of_row = broadcast_index<1>(plan.lead, {&plan.positions_shape}, "rope");
  KX_DISPATCH_FLOAT(x.dtype, {
    rope_rotate_kernel<<<cuda::blocks_for(plan.rows * half, cuda::kThreads), cuda::kThreads, 0, stream>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), cos_t, sin_t, plan.rows, half, entry_of_row);
  });
  cuda::check_launch("rope");
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(rope, CUDA, rope_cuda);

}  // namespace kx
