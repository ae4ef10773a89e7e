// topk and its gradient on CUDA, for the contract of the CPU twin (topk.cpp): the ranks of
// ops/topk/math.h order the entries on both, and no two entries of a row share a rank, so both
// backends choose the same entries in the same order whatever their algorithms.
//
// k <= 32: a block per row. Each thread keeps the K best ranks of its strided slice in registers
// (K the power of two at or above k; an unrolled insertion), then writes them to shared memory, and
// k rounds of a block-wide max take the best: the thread holding the winner advances to its next.
// Every entry of the row's top k is among its thread's top K, since K >= k.
// k > 32: every entry's rank is written out and CUB's segmented radix sort orders each row
// (descending), whose first k are read off.
//
// The backward scatters dy to the indices, a thread per row walking its k in order (so a repeated
// index, which topk never gives, keeps its last dy as on the CPU). Indices are checked on the device:
// the first position holding one outside [0, length) is recorded (an atomicMin) and read back, for
// the CPU's E_ARG.
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <cstdint>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "ops/topk/math.h"
#include "ops/topk/plan.h"

namespace kx {
namespace {

constexpr int kMaxRegisterK = 32;

// Inserts rank r into best[0, K), kept in descending order, when it beats the last.
template <int K>
__device__ __forceinline__ void insert_rank(uint64_t (&best)[K], uint64_t r) {
  if (r <= best[K - 1]) return;
  best[K - 1] = r;
#pragma unroll
  for (int i = K - 1; i > 0; --i) {
    if (best[i] > best[i - 1]) {
      const uint64_t t = best[i];
      best[i] = best[i - 1];
      best[i - 1] = t;
    }
  }
}

__device__ __forceinline__ uint64_t max_rank(uint64_t a, uint64_t b) { return a > b ? a : b; }

// Rows of [outer, C, inner] along C, a block per row (grid-strided); blockDim.x a multiple of 32 and
// blockDim.x * K ranks of dynamic shared memory.
template <class T, int K>
__global__ void topk_block_kernel(const T* __restrict__ x, T* __restrict__ values, int32_t* __restrict__ indices,
                                  int64_t rows, int64_t C, int64_t inner, int64_t k, bool largest) {
  extern __shared__ uint64_t candidates[];
  __shared__ uint64_t warp_best[32];
  uint64_t* mine = candidates + (int64_t)threadIdx.x * K;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t o = row / inner, j = row % inner;
    const T* src = x + o * C * inner + j;
    uint64_t best[K];
#pragma unroll
    for (int i = 0; i < K; ++i) best[i] = 0;  // 0: no entry (below every rank)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) insert_rank<K>(best, topk_rank(topk_key(to_float(src[c * inner]), largest), c));
#pragma unroll
    for (int i = 0; i < K; ++i) mine[i] = best[i];
    int head = 0;
    for (int64_t t = 0; t < k; ++t) {
      const uint64_t offer = head < K ? mine[head] : 0;
      uint64_t m = offer;
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) m = max_rank(m, __shfl_xor_sync(0xffffffffu, m, off));
      if (lane == 0) warp_best[warp] = m;
      __syncthreads();
      uint64_t top = 0;
      for (int w = 0; w < warps; ++w) top = max_rank(top, warp_best[w]);
      if (offer == top) ++head;  // ranks are distinct and top is a real one (k <= C): one winner
      if (threadIdx.x == 0) {
        const int32_t at = topk_index(top);
        const int64_t out = o * k * inner + t * inner + j;
        indices[out] = at;
        values[out] = src[(int64_t)at * inner];
      }
      __syncthreads();  // warp_best is rewritten next round
    }
  }
}

template <class T, int K>
void launch_block(const T* x, T* values, int32_t* indices, const TopkLayout& l, bool largest, cudaStream_t stream) {
  // 32 KiB of candidates; fewer threads for short rows.
  const int64_t cap = K <= 16 ? 256 : 128;
  const int threads = (int)std::min<int64_t>(cap, std::max<int64_t>(32, (l.in_len + 31) / 32 * 32));
  const int64_t rows = l.outer * l.inner;
  const unsigned grid = (unsigned)std::min<int64_t>(rows, int64_t(1) << 20);
  topk_block_kernel<T, K><<<grid, threads, (size_t)threads * K * sizeof(uint64_t), stream>>>(
      x, values, indices, rows, l.in_len, l.inner, l.out_len, largest);
}

// ---- k > 32: segmented radix sort of the ranks -----------------------------------------------------

template <class T>
__global__ void ranks_kernel(const T* __restrict__ x, uint64_t* __restrict__ ranks, int64_t row0, int64_t n,
                             int64_t C, int64_t inner, bool largest) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t e = cuda::thread_index(); e < n; e += stride) {
    const int64_t row = row0 + e / C, c = e % C;
    const int64_t o = row / inner, j = row % inner;
    ranks[e] = topk_rank(topk_key(to_float(x[(o * C + c) * inner + j]), largest), c);
  }
}

__global__ void offsets_kernel(int32_t* __restrict__ offsets, int64_t count, int64_t C) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < count; i += stride) offsets[i] = (int32_t)(i * C);
}

template <class T>
__global__ void take_kernel(const uint64_t* __restrict__ sorted, const T* __restrict__ x, T* __restrict__ values,
                            int32_t* __restrict__ indices, int64_t row0, int64_t n, int64_t C, int64_t inner, int64_t k) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t e = cuda::thread_index(); e < n; e += stride) {
    const int64_t r = e / k, t = e % k, row = row0 + r;
    const int64_t o = row / inner, j = row % inner;
    const int32_t at = topk_index(sorted[r * C + t]);
    const int64_t out = (o * k + t) * inner + j;
    indices[out] = at;
    values[out] = x[(o * C + at) * inner + j];
  }
}

template <class T>
void sort_rows(const T* x, T* values, int32_t* indices, const TopkLayout& l, bool largest, Device dev,
               cudaStream_t stream) {
  const int64_t C = l.in_len, k = l.out_len, rows = l.outer * l.inner;
  // Chunks of whole rows, about 2^26 entries (2 x 8 bytes each): within CUB's int count (a row is
  // below 2^31), and a bounded scratch.
  const int64_t chunk_rows = std::min(rows, std::max<int64_t>(1, (int64_t(1) << 26) / C));
  Tensor keys_in = empty({chunk_rows * C * 8}, DType::UInt8, dev);
  Tensor keys_out = empty({chunk_rows * C * 8}, DType::UInt8, dev);
  Tensor offsets = empty({chunk_rows + 1}, DType::Int32, dev);
  auto* in = static_cast<uint64_t*>(keys_in.raw());
  auto* out = static_cast<uint64_t*>(keys_out.raw());
  int32_t* off = offsets.data<int32_t>();
  offsets_kernel<<<cuda::blocks_for(chunk_rows + 1, cuda::kThreads), cuda::kThreads, 0, stream>>>(off, chunk_rows + 1, C);
  cuda::check_launch("topk");
  size_t temp_bytes = 0;
  cuda::check(cub::DeviceSegmentedRadixSort::SortKeysDescending(nullptr, temp_bytes, in, out, (int)(chunk_rows * C),
                                                                 (int)chunk_rows, off, off + 1, 0, 64, stream),
              "topk: sort");
  Tensor temp = empty({(int64_t)std::max<size_t>(temp_bytes, 1)}, DType::UInt8, dev);
  for (int64_t row0 = 0; row0 < rows; row0 += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows - row0);
    ranks_kernel<<<cuda::blocks_for(n * C, cuda::kThreads), cuda::kThreads, 0, stream>>>(x, in, row0, n * C, C,
                                                                                         l.inner, largest);
    cuda::check_launch("topk");
    // The temp storage asked for the full chunk's count serves a smaller last chunk too.
    cuda::check(cub::DeviceSegmentedRadixSort::SortKeysDescending(temp.raw(), temp_bytes, in, out, (int)(n * C), (int)n,
                                                                   off, off + 1, 0, 64, stream),
                "topk: sort");
    take_kernel<<<cuda::blocks_for(n * k, cuda::kThreads), cuda::kThreads, 0, stream>>>(out, x, values, indices, row0,
                                                                                       n * k, C, l.inner, k);
    cuda::check_launch("topk");
  }
}

template <class T>
void topk_rows(const T* x, T* values, int32_t* indices, const TopkLayout& l, bool largest, Device dev,
               cudaStream_t stream) {
  const int64_t k = l.out_len;
  if (k > kMaxRegisterK) return sort_rows(x, values, indices, l, largest, dev, stream);
  if (k <= 1) launch_block<T, 1>(x, values, indices, l, largest, stream);
  else if (k <= 2) launch_block<T, 2>(x, values, indices, l, largest, stream);
  else if (k <= 4) launch_block<T, 4>(x, values, indices, l, largest, stream);
  else if (k <= 8) launch_block<T, 8>(x, values, indices, l, largest, stream);
  else if (k <= 16) launch_block<T, 16>(x, values, indices, l, largest, stream);
  else launch_block<T, 32>(x, values, indices, l, largest, stream);
  cuda::check_launch("topk");
}

std::vector<Tensor> topk_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const TopkLayout l = topk_layout(x, attrs);
  const bool largest = attrs.flag("largest", true);
  Tensor values = empty(l.out_shape, x.dtype, x.device());
  Tensor indices = empty(l.out_shape, DType::Int32, x.device());
  if (values.numel() > 0) {
    KX_DISPATCH_FLOAT(x.dtype, topk_rows(x.data<scalar_t>(), values.data<scalar_t>(), indices.data<int32_t>(), l,
                                         largest, x.device(), cuda::stream(x)));
  }
  return {values, indices};
}

// ---- backward ------------------------------------------------------------------------------------

constexpr unsigned long long kNoBadIndex = ~0ull;

template <class T>
__global__ void scatter_kernel(const int32_t* __restrict__ at, const T* __restrict__ dy, T* __restrict__ dx,
                               int64_t rows, int64_t k, int64_t length, int64_t inner,
                               unsigned long long* __restrict__ first_bad) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t row = cuda::thread_index(); row < rows; row += stride) {
    const int64_t o = row / inner, j = row % inner;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t p = (o * k + t) * inner + j;
      const int32_t i = at[p];
      if (i < 0 || i >= length) {
        atomicMin(first_bad, (unsigned long long)p);
        continue;
      }
      dx[(o * length + i) * inner + j] = dy[p];
    }
  }
}

std::vector<Tensor> topk_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &indices = in[0], &dy = in[1];
  const TopkLayout l = topk_backward_layout(indices, dy, attrs);
  Tensor dx = zeros(l.out_shape, dy.dtype, dy.device());
  if (indices.numel() == 0) return {dx};
  cudaStream_t stream = cuda::stream(dy);
  Tensor flag = empty({2}, DType::Int32, dy.device());  // 8 bytes: one unsigned long long
  cuda::check(cudaMemsetAsync(flag.raw(), 0xff, sizeof(unsigned long long), stream), "topk_backward");
  auto* first_bad = static_cast<unsigned long long*>(flag.raw());
  const int64_t rows = l.outer * l.inner;
  KX_DISPATCH_FLOAT(dy.dtype, {
    scatter_kernel<<<cuda::blocks_for(rows, cuda::kThreads), cuda::kThreads, 0, stream>>>(
        indices.data<int32_t>(), dy.data<scalar_t>(), dx.data<scalar_t>(), rows, l.in_len, l.out_len, l.inner,
        first_bad);
  });
  cuda::check_launch("topk_backward");
  unsigned long long first = 0;
  cuda::check(cudaMemcpyAsync(&first, first_bad, sizeof first, cudaMemcpyDeviceToHost, stream), "topk_backward");
  cuda::check(cudaStreamSynchronize(stream), "topk_backward");
  if (first != kNoBadIndex) {
    int32_t bad = 0;
    cuda::check(cudaMemcpyAsync(&bad, indices.data<int32_t>() + first, sizeof bad, cudaMemcpyDeviceToHost, stream),
                "topk_backward");
    cuda::check(cudaStreamSynchronize(stream), "topk_backward");
    fail_bad_topk_index(bad, (int64_t)first, l.out_len);
  }
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(topk, CUDA, topk_cuda);
KX_REGISTER_KERNEL(topk_backward, CUDA, topk_backward_cuda);

}  // namespace kx
