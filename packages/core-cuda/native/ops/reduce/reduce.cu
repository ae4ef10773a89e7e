// Reductions on CUDA: sum, mean, max over any set of axes, and max's backward.
//
// The axes are coalesced as on the CPU (ops/reduce/plan.h) and reduced one [outer, R, inner] step
// at a time, last reduced group first, through float32 intermediates; only the last step rounds to
// the output dtype (and divides for mean). Rows (inner == 1) are reduced by a warp or a block each;
// columns (inner > 1) by 32-column tiles whose threads split the rows. When that leaves the device
// too little to do, R is also cut into chunks reduced by separate blocks into float32 partials,
// combined afterwards in chunk order. Every sum is computed in a fixed order for a given shape and
// device (no atomics on floats), so results are deterministic.
#include <algorithm>
#include <cmath>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/broadcast.h"
#include "kx/reduce.h"
#include "ops/reduce/plan.h"

namespace kx {
namespace {

using cuda::kThreads;

template <RedOp Op> __device__ __forceinline__ float identity() { return Op == RedOp::Max ? -INFINITY : 0.0f; }
template <RedOp Op> __device__ __forceinline__ float combine(float a, float v) {
  return Op == RedOp::Max ? max_nan(a, v) : a + v;
}

// The value written for one output: mean divides by the element count (mean_count >= 0; 0/0 gives
// NaN, as the CPU), the others pass mean_count = -1.
template <class T> __device__ __forceinline__ T finish(float v, float mean_count) {
  return from_float<T>(mean_count >= 0.0f ? v / mean_count : v);
}

template <RedOp Op> __device__ __forceinline__ float warp_combine(float v) {
#pragma unroll
  for (int w = 16; w > 0; w /= 2) v = combine<Op>(v, __shfl_down_sync(0xffffffffu, v, w));
  return v;
}

// Where a step's results go: straight to the output (finished), or to float32 partials per chunk.
template <class Tout>
struct StepOut {
  Tout* out;         // [outer, inner], when chunks == 1
  float* partial;    // [outer, chunks, inner], when chunks > 1
  int64_t chunks;
  float mean_count;  // the count mean divides by; -1 for none
};

template <class Tout>
__device__ __forceinline__ void write_result(const StepOut<Tout>& so, int64_t o, int64_t c, int64_t inner, int64_t j,
                                             float v) {
  if (so.chunks == 1) so.out[o * inner + j] = finish<Tout>(v, so.mean_count);
  else so.partial[(o * so.chunks + c) * inner + j] = v;
}

// ---- rows: kRowThreads threads per row, kThreads / kRowThreads rows per block ------------------

template <RedOp Op, int kRowThreads, class Tin, class Tout>
__global__ void reduce_rows_kernel(const Tin* __restrict__ x, int64_t outer, int64_t R, int64_t chunk,
                                   StepOut<Tout> so) {
  constexpr int kRowsPerBlock = kThreads / kRowThreads;
  constexpr int kWarps = kRowThreads / 32;
  __shared__ float warp_part[kRowsPerBlock][kWarps > 1 ? kWarps : 1];
  const int lane_in_row = threadIdx.x % kRowThreads, row_in_block = threadIdx.x / kRowThreads;
  const int64_t items = outer * so.chunks;
  for (int64_t base = (int64_t)blockIdx.x * kRowsPerBlock; base < items; base += (int64_t)gridDim.x * kRowsPerBlock) {
    const int64_t item = base + row_in_block;
    float acc = identity<Op>();
    if (item < items) {
      const int64_t o = item / so.chunks, c = item % so.chunks;
      const int64_t r0 = c * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
      const Tin* row = x + o * R;
      for (int64_t r = r0 + lane_in_row; r < r1; r += kRowThreads) acc = combine<Op>(acc, to_float(row[r]));
    }
    acc = warp_combine<Op>(acc);
    if constexpr (kWarps > 1) {
      const int warp_in_row = lane_in_row / 32;
      if (lane_in_row % 32 == 0) warp_part[row_in_block][warp_in_row] = acc;
      __syncthreads();
      if (lane_in_row == 0)
        for (int w = 1; w < kWarps; ++w) acc = combine<Op>(acc, warp_part[row_in_block][w]);
      __syncthreads();
    }
    if (lane_in_row == 0 && item < items) write_result(so, item / so.chunks, item % so.chunks, 1, 0, acc);
  }
}

// ---- columns: 32-column tiles, kColRows threads down the rows of each ---------------------------

constexpr int kColRows = kThreads / 32;

template <RedOp Op, class Tin, class Tout>
__global__ void reduce_cols_kernel(const Tin* __restrict__ x, int64_t outer, int64_t R, int64_t inner,
                                   int64_t chunk, StepOut<Tout> so) {
  __shared__ float part[kColRows][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int64_t tiles = (inner + 31) / 32;
  const int64_t items = outer * tiles * so.chunks;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t c = item % so.chunks, rest = item / so.chunks;
    const int64_t tile = rest % tiles, o = rest / tiles;
    const int64_t j = tile * 32 + tx;
    const int64_t r0 = c * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
    float acc = identity<Op>();
    if (j < inner) {
      const Tin* slab = x + o * R * inner + j;
      for (int64_t r = r0 + ty; r < r1; r += kColRows) acc = combine<Op>(acc, to_float(slab[r * inner]));
    }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && j < inner) {
      for (int k = 1; k < kColRows; ++k) acc = combine<Op>(acc, part[k][tx]);
      write_result(so, o, c, inner, j, acc);
    }
    __syncthreads();
  }
}

// out[o, j] = the chunks' partials combined in chunk order, finished.
template <RedOp Op, class Tout>
__global__ void combine_chunks_kernel(const float* __restrict__ partial, Tout* __restrict__ out, int64_t outer,
                                      int64_t chunks, int64_t inner, float mean_count) {
  const int64_t n = outer * inner;
  const int64_t stride = cuda::grid_stride();
  for (int64_t k = cuda::thread_index(); k < n; k += stride) {
    const int64_t o = k / inner, j = k - o * inner;
    float acc = identity<Op>();
    for (int64_t c = 0; c < chunks; ++c) acc = combine<Op>(acc, partial[(o * chunks + c) * inner + j]);
    out[k] = finish<Tout>(acc, mean_count);
  }
}

int multiprocessors(int device) {
  int sms = 0;
  cuda::check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "reduce");
  return sms > 0 ? sms : 1;
}

// One [outer, R, inner] step from x into out (mean_count < 0: no division).
template <RedOp Op, class Tin, class Tout>
void reduce_step(const Tin* x, Tout* out, int64_t outer, int64_t R, int64_t inner, float mean_count, Device dev,
                 cudaStream_t stream) {
  // An empty reduced group before this one (x [0, 3, 4, 5] over axes 0 and 2) leaves no outputs in
  // this step: nothing to launch (a grid of outer * ... blocks would be 0).
  if (outer * inner == 0) return;
  const bool rows = inner == 1;
  const bool small_rows = rows && R <= 1024;
  // Blocks' worth of independent work without chunking, and the rows one chunk should hold at least.
  const int64_t units = rows ? (small_rows ? (outer + 7) / 8 : outer) : outer * ((inner + 31) / 32);
  const int64_t min_chunk = rows ? 4096 : 256;
  const int64_t target = 4 * (int64_t)multiprocessors(dev.index);
  int64_t chunks = 1;
  if (units < target && R >= 2 * min_chunk) chunks = std::min<int64_t>((target + units - 1) / units, R / min_chunk);
  const int64_t chunk = chunks > 1 ? (R + chunks - 1) / chunks : R;
  if (chunks > 1) chunks = (R + chunk - 1) / chunk;
  Tensor partial;
  StepOut<Tout> so{out, nullptr, chunks, mean_count};
  if (chunks > 1) {
    partial = empty({outer * chunks * inner}, DType::Float32, dev);
    so.partial = partial.data<float>();
  }
  if (rows && small_rows && chunks == 1) {
    const unsigned grid = cuda::blocks_for(outer, kThreads / 32);
    reduce_rows_kernel<Op, 32><<<grid, kThreads, 0, stream>>>(x, outer, R, chunk, so);
  } else if (rows) {
    const unsigned grid = (unsigned)std::min<int64_t>(outer * chunks, int64_t(1) << 20);
    reduce_rows_kernel<Op, kThreads><<<grid, kThreads, 0, stream>>>(x, outer, R, chunk, so);
  } else {
    const unsigned grid = (unsigned)std::min<int64_t>(units * chunks, int64_t(1) << 20);
    reduce_cols_kernel<Op><<<grid, kThreads, 0, stream>>>(x, outer, R, inner, chunk, so);
  }
  cuda::check_launch("reduce");
  if (chunks > 1) {
    combine_chunks_kernel<Op><<<cuda::blocks_for(outer * inner, kThreads), kThreads, 0, stream>>>(
        partial.data<float>(), out, outer, chunks, inner, mean_count);
    cuda::check_launch("reduce");
  }
}

// Runs the coalesced plan into y: one step per reduced group, last first, through float32.
template <RedOp Op, class T>
void reduce_groups(const T* x, T* y, Groups g, bool mean, Device dev, cudaStream_t stream) {
  int64_t count = 1;
  for (size_t i = 0; i < g.size.size(); ++i) if (g.reduced[i]) count *= g.size[i];
  const float mean_count = mean ? (float)count : -1.0f;
  Tensor cur;  // the float32 result of the previous step
  for (;;) {
    int last = -1;
    for (int i = (int)g.size.size() - 1; i >= 0 && last < 0; --i) if (g.reduced[i]) last = i;
    if (last < 0) break;
    bool final_step = true;
    for (int i = 0; i < last; ++i) final_step = final_step && !g.reduced[i];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < last; ++i) outer *= g.size[i];
    for (size_t i = last + 1; i < g.size.size(); ++i) inner *= g.size[i];
    const int64_t R = g.size[last];
    if (final_step) {
      if (cur.defined()) reduce_step<Op>(cur.data<float>(), y, outer, R, inner, mean_count, dev, stream);
      else reduce_step<Op>(x, y, outer, R, inner, mean_count, dev, stream);
      return;
    }
    Tensor next = empty({outer * inner}, DType::Float32, dev);
    if (cur.defined()) reduce_step<Op>(cur.data<float>(), next.data<float>(), outer, R, inner, -1.0f, dev, stream);
    else reduce_step<Op>(x, next.data<float>(), outer, R, inner, -1.0f, dev, stream);
    cur = next;
    // Drop the reduced group and merge the kept neighbours it separated.
    g.size.erase(g.size.begin() + last);
    g.reduced.erase(g.reduced.begin() + last);
    if (last > 0 && last < (int)g.size.size() && !g.reduced[last - 1] && !g.reduced[last]) {
      g.size[last - 1] *= g.size[last];
      g.size.erase(g.size.begin() + last);
      g.reduced.erase(g.reduced.begin() + last);
    }
  }
  // Nothing to reduce (every reduced dim has size 1): the result is x itself (mean divides by 1).
  int64_t n = 1;
  for (int64_t s : g.size) n *= s;
  cuda::check(cudaMemcpyAsync(y, x, (size_t)n * sizeof(T), cudaMemcpyDeviceToDevice, stream), "reduce");
}

template <RedOp Op, bool Mean>
std::vector<Tensor> reduce_cuda(const Inputs& in, const Attrs& attrs) {
  const char* name = Mean ? "mean" : Op == RedOp::Max ? "max" : "sum";
  const Tensor& x = in[0];
  const std::vector<bool> flag = reduced_dims(name, x, attrs);
  const Shape out_shape = reduced_shape(x.shape, flag, attrs.flag("keepDims", false));
  if (Op == RedOp::Max) check_max_reducible(name, x.shape, flag, out_shape);
  Tensor y = empty(out_shape, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  const Groups g = coalesce(x.shape, flag);
  cudaStream_t stream = cuda::stream(y);
  KX_DISPATCH_FLOAT(x.dtype, reduce_groups<Op>(x.data<scalar_t>(), y.data<scalar_t>(), g, Mean, y.device(), stream));
  return {y};
}

// ---- max_backward ---------------------------------------------------------------------------------

// ties[o] = how many elements of x equal their output's max (integer atomics: exact, order-free).
template <class T>
__global__ void count_ties_kernel(const T* __restrict__ x, const T* __restrict__ y, int32_t* __restrict__ ties,
                                  int64_t n, BroadcastIndex<1> out_of) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride) {
    int64_t o;
    out_of.offsets(i, &o);
    if (to_float(x[i]) == to_float(y[o])) atomicAdd(&ties[o], 1);
  }
}

// dx = dy / ties where x equals its max, else 0 (a NaN max has no ties: zero gradient), as the CPU.
template <class T>
__global__ void max_backward_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                    const int32_t* __restrict__ ties, T* __restrict__ dx, int64_t n,
                                    BroadcastIndex<1> out_of) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride) {
    int64_t o;
    out_of.offsets(i, &o);
    const int32_t t = ties[o];
    const float share = t ? to_float(dy[o]) / (float)t : 0.0f;
    dx[i] = to_float(x[i]) == to_float(y[o]) ? from_float<T>(share) : from_float<T>(0.0f);
  }
}

std::vector<Tensor> max_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &y = in[1], &dy = in[2];
  const std::vector<bool> flag = max_backward_dims(x, y, dy, attrs);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {dx};
  // Each element's output: the groups walked with the kept ones' output strides, 0 on reduced ones.
  const Groups g = coalesce(x.shape, flag);
  Shape dims(g.size.begin(), g.size.end()), out_strides(g.size.size(), 0);
  for (int64_t i = (int64_t)g.size.size() - 1, s = 1; i >= 0; --i) {
    if (g.reduced[i]) continue;
    out_strides[i] = s;
    s *= g.size[i];
  }
  const BroadcastIndex<1> out_of = strided_index(dims, out_strides, "max_backward");
  cudaStream_t stream = cuda::stream(dx);
  Tensor ties = empty({y.numel()}, DType::Int32, dx.device());
  cuda::zero(ties);
  const unsigned grid = cuda::blocks_for(n, kThreads);
  KX_DISPATCH_FLOAT(x.dtype, {
    count_ties_kernel<<<grid, kThreads, 0, stream>>>(x.data<scalar_t>(), y.data<scalar_t>(), ties.data<int32_t>(), n,
                                                     out_of);
    max_backward_kernel<<<grid, kThreads, 0, stream>>>(x.data<scalar_t>(), y.data<scalar_t>(), dy.data<scalar_t>(),
                                                       ties.data<int32_t>(), dx.data<scalar_t>(), n, out_of);
  });
  cuda::check_launch("max_backward");
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(sum, CUDA, (reduce_cuda<RedOp::Sum, false>));
KX_REGISTER_KERNEL(mean, CUDA, (reduce_cuda<RedOp::Sum, true>));
KX_REGISTER_KERNEL(max, CUDA, (reduce_cuda<RedOp::Max, false>));
KX_REGISTER_KERNEL(max_backward, CUDA, max_backward_cuda);

}  // namespace kx
