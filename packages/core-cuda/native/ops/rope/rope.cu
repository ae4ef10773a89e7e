// RoPE on CUDA, in two kernels like the CPU's two loops: the cos/sin of every (position entry, pair)
// into a float32 table (ops/rope/math.h's theta and angle), then one thread per pair of x rotating
// it with its row's table entry, or copying one channel past the rotary dim. A row's entry comes
// from the positions broadcast against x's leading axes (kx/broadcast.h), as the CPU's strides give it.
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/broadcast.h"
#include "ops/rope/math.h"
#include "ops/rope/plan.h"

namespace kx {
namespace {

// cos_t[p, i] and sin_t[p, i] (sin negated for the inverse) for entries p and pairs i < half.
__global__ void rope_table_kernel(const int32_t* __restrict__ positions, const float* __restrict__ frequencies,
                                  int64_t entries, int64_t half, int64_t rotary, double base, int64_t offset,
                                  float scale, float sign, float* __restrict__ cos_t, float* __restrict__ sin_t) {
  const int64_t n = entries * half;
  const int64_t stride = cuda::grid_stride();
  for (int64_t k = cuda::thread_index(); k < n; k += stride) {
    const int64_t p = k / half, i = k - p * half;
    const int64_t position = (positions ? (int64_t)positions[p] : p) + offset;
    const float theta = frequencies ? frequencies[i] : rope_theta(i, rotary, base);
    float s, c;
    sincosf(rope_angle(position, scale, theta), &s, &c);
    cos_t[k] = c;
    sin_t[k] = sign * s;
  }
}

// Item j of a row: j < half rotates pair j, otherwise it copies channel rotary + (j − half).
template <class T>
__global__ void rope_rotate_kernel(const T* __restrict__ x, T* __restrict__ y, const float* __restrict__ cos_t,
                                   const float* __restrict__ sin_t, int64_t rows, int64_t d, int64_t half,
                                   int64_t rotary, bool rotate_half, BroadcastIndex<1> entry_of_row) {
  const int64_t per_row = half + (d - rotary);
  const int64_t n = rows * per_row;
  const int64_t stride = cuda::grid_stride();
  for (int64_t k = cuda::thread_index(); k < n; k += stride) {
    const int64_t r = k / per_row, j = k - r * per_row;
    const T* xr = x + r * d;
    T* yr = y + r * d;
    if (j >= half) {
      yr[rotary + j - half] = xr[rotary + j - half];
      continue;
    }
    int64_t entry;
    entry_of_row.offsets(r, &entry);
    const int64_t t = entry * half + j;
    int64_t a, b;
    rope_pair(j, half, rotate_half, &a, &b);
    float y0, y1;
    rope_rotate_pair(to_float(xr[a]), to_float(xr[b]), cos_t[t], sin_t[t], false, &y0, &y1);
    yr[a] = from_float<T>(y0);
    yr[b] = from_float<T>(y1);
  }
}

std::vector<Tensor> rope_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &positions = in[1], &frequencies = in[2];
  const RopePlan plan = rope_plan(x, positions, frequencies, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t half = plan.rotary / 2;
  if (plan.rows == 0 || plan.d == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  Tensor table = empty({2, plan.entries, half}, DType::Float32, y.device());
  float* cos_t = table.data<float>();
  float* sin_t = cos_t + plan.entries * half;
  rope_table_kernel<<<cuda::blocks_for(plan.entries * half, cuda::kThreads), cuda::kThreads, 0, stream>>>(
      positions.defined() ? positions.data<int32_t>() : nullptr,
      frequencies.defined() ? frequencies.data<float>() : nullptr, plan.entries, half, plan.rotary, plan.base,
      plan.offset, plan.scale, plan.inverse ? -1.0f : 1.0f, cos_t, sin_t);
  cuda::check_launch("rope");
  const BroadcastIndex<1> entry_of_row = broadcast_index<1>(plan.lead, {&plan.positions_shape}, "rope");
  const int64_t items = plan.rows * (half + plan.d - plan.rotary);
  KX_DISPATCH_FLOAT(x.dtype, {
    rope_rotate_kernel<<<cuda::blocks_for(items, cuda::kThreads), cuda::kThreads, 0, stream>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), cos_t, sin_t, plan.rows, plan.d, half, plan.rotary, plan.rotate_half,
        entry_of_row);
  });
  cuda::check_launch("rope");
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(rope, CUDA, rope_cuda);

}  // namespace kx
