// Shape ops on CUDA: reshape (a view), permute, slice and its backward, concat. Like the CPU's, the
// copies are dtype-blind (elements of 1, 2 or 4 bytes) and permutes are simplified first
// (ops/shape/plan.h). A permute that keeps the last axis last, a slice and a slice's backward are
// strided walks whose inner run is contiguous on both sides (one thread per element, offsets from
// kx/broadcast.h's index); a permute that moves the last axis is a batched 2-D transpose through
// shared-memory tiles, so both reads and writes stay coalesced; concat is one 2-D copy per input.
#include <algorithm>
#include <limits>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/broadcast.h"
#include "ops/shape/plan.h"

namespace kx {
namespace {

using cuda::kThreads;

void copy_async(void* dst, const void* src, size_t bytes, cudaStream_t stream, const char* op) {
  cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), op);
}

// Gather: dst[i] = src[base + walk(i)]; scatter (Gather false): dst[base + walk(i)] = src[i].
template <bool Gather, class T, class I>
__global__ void strided_copy_kernel(const T* __restrict__ src, T* __restrict__ dst, I n, int64_t base,
                                    BroadcastIndex<1> walk) {
  const I stride = (I)(gridDim.x * blockDim.x);
  for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += stride) {
    I off;
    walk.offsets(i, &off);
    if (Gather) dst[i] = src[base + off];
    else dst[base + off] = src[i];
  }
}

template <bool Gather, class T>
void strided_copy(const T* src, T* dst, int64_t n, int64_t base, const BroadcastIndex<1>& walk, cudaStream_t stream) {
  const unsigned grid = cuda::blocks_for(n, kThreads);
  // 32-bit index arithmetic when the element count and the walk's farthest offset both fit.
  int64_t reach = 0;
  for (int d = 0; d < walk.rank; ++d) reach += (walk.dims[d] - 1) * walk.strides[d][0];
  // (n plus the grid's stride must fit too: the loop's last i += stride must not overflow.)
  if (n <= std::numeric_limits<int32_t>::max() - (int64_t)grid * kThreads &&
      reach <= std::numeric_limits<int32_t>::max())
    strided_copy_kernel<Gather, T, int32_t><<<grid, kThreads, 0, stream>>>(src, dst, (int32_t)n, base, walk);
  else
    strided_copy_kernel<Gather, T, int64_t><<<grid, kThreads, 0, stream>>>(src, dst, n, base, walk);
}

std::vector<Tensor> reshape_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  return {view(x, reshape_shape(x, attrs))};
}

// --- permute ----------------------------------------------------------------------------------

constexpr int kTile = 32;
constexpr int kTileRows = 8;  // threads per tile column: each thread moves kTile / kTileRows elements

// Tile (i0, j0) of each outer item: input (o, i, j) at src + o_in + j * src_j + i (i contiguous),
// output at dst + o_out + i * dst_i + j (j contiguous).
template <class T>
__global__ void transpose_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t ni, int64_t nj,
                                 int64_t src_j, int64_t dst_i, int64_t outer_n, BroadcastIndex<2> outer) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t tiles_i = (ni + kTile - 1) / kTile, tiles_j = (nj + kTile - 1) / kTile;
  const int64_t items = outer_n * tiles_i * tiles_j;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t tj = item % tiles_j, rest = item / tiles_j;
    const int64_t ti = rest % tiles_i, o = rest / tiles_i;
    int64_t off[2];
    outer.offsets(o, off);
    const int64_t i0 = ti * kTile, j0 = tj * kTile;
    for (int k = threadIdx.y; k < kTile; k += kTileRows) {
      const int64_t i = i0 + threadIdx.x, j = j0 + k;
      if (i < ni && j < nj) tile[k][threadIdx.x] = src[off[0] + j * src_j + i];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < kTile; k += kTileRows) {
      const int64_t i = i0 + k, j = j0 + threadIdx.x;
      if (i < ni && j < nj) dst[off[1] + i * dst_i + j] = tile[threadIdx.x][k];
    }
    __syncthreads();
  }
}

template <class T>
void permute_tiled(const T* src, T* dst, const SimplePerm& s, cudaStream_t stream) {
  const int64_t r = (int64_t)s.dims.size();
  const Shape in_strides = row_major_strides(s.dims);
  Shape out_dims(r);
  for (int64_t o = 0; o < r; ++o) out_dims[o] = s.dims[s.perm[o]];
  const Shape out_strides = row_major_strides(out_dims);
  int64_t oi = 0;
  while (s.perm[oi] != r - 1) ++oi;
  const int64_t ni = s.dims[r - 1], nj = out_dims[r - 1];
  BroadcastIndex<2> outer;  // every other output axis: [input stride, output stride]
  outer.rank = 0;
  int64_t outer_n = 1;
  for (int64_t o = 0; o < r - 1; ++o) {
    if (o == oi) continue;
    KX_CHECK(outer.rank < kMaxIndexDims, Shape, "permute: more than ", kMaxIndexDims, " axes after simplification");
    outer.dims[outer.rank] = out_dims[o];
    outer.strides[outer.rank][0] = in_strides[s.perm[o]];
    outer.strides[outer.rank][1] = out_strides[o];
    ++outer.rank;
    outer_n *= out_dims[o];
  }
  if (outer.rank == 0) {
    outer.rank = 1;
    outer.dims[0] = 1;
    outer.strides[0][0] = outer.strides[0][1] = 0;
  }
  const int64_t items = outer_n * ((ni + kTile - 1) / kTile) * ((nj + kTile - 1) / kTile);
  const unsigned grid = (unsigned)std::min<int64_t>(items, int64_t(1) << 20);
  transpose_kernel<T><<<grid, dim3(kTile, kTileRows), 0, stream>>>(src, dst, ni, nj, in_strides[s.perm[r - 1]],
                                                                    out_strides[oi], outer_n, outer);
}

std::vector<Tensor> permute_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const std::vector<int64_t> perm = attrs.ints("perm");
  const Shape out_shape = permute_out_shape(x, perm);
  Tensor y = empty(out_shape, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  const SimplePerm s = simplify(x.shape, perm);
  const int64_t r = (int64_t)s.dims.size();
  if (r <= 1) {  // the order of elements is unchanged
    copy_async(y.raw(), x.raw(), x.nbytes(), stream, "permute");
    return {y};
  }
  with_element_type(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    if (s.perm.back() == r - 1) {
      // The last axis stays last: a walk of the output reading input rows.
      const Shape in_strides = row_major_strides(s.dims);
      Shape out_dims(r), read_strides(r);
      for (int64_t o = 0; o < r; ++o) {
        out_dims[o] = s.dims[s.perm[o]];
        read_strides[o] = in_strides[s.perm[o]];
      }
      strided_copy<true>(src, dst, y.numel(), 0, strided_index(out_dims, read_strides, "permute"), stream);
    } else {
      permute_tiled(src, dst, s, stream);
    }
  });
  cuda::check_launch("permute");
  return {y};
}

// --- slice and its backward -------------------------------------------------------------------

// The box at `begin` of a tensor of shape `full`: its first element's offset and its walk.
int64_t box_base(const Shape& full, const Shape& begin) {
  const Shape strides = row_major_strides(full);
  int64_t base = 0;
  for (size_t a = 0; a < full.size(); ++a) base += begin[a] * strides[a];
  return base;
}

std::vector<Tensor> slice_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Shape begin = attrs.ints("begin");
  const Shape size = resolve_box("slice", x.shape, begin, attrs.ints("size"));
  Tensor y = empty(size, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  const BroadcastIndex<1> walk = strided_index(size, row_major_strides(x.shape), "slice");
  const int64_t base = box_base(x.shape, begin);
  with_element_type(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    strided_copy<true>(x.data<T>(), y.data<T>(), y.numel(), base, walk, cuda::stream(y));
  });
  cuda::check_launch("slice");
  return {y};
}

std::vector<Tensor> slice_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& dy = in[0];
  const Shape shape = slice_backward_shape(dy, attrs);
  const Shape begin = attrs.ints("begin");
  Tensor dx = empty(shape, dy.dtype, dy.device());
  if (dx.numel() == 0) return {dx};
  cuda::zero(dx);
  if (dy.numel() == 0) return {dx};
  const BroadcastIndex<1> walk = strided_index(dy.shape, row_major_strides(shape), "slice_backward");
  const int64_t base = box_base(shape, begin);
  with_element_type(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    strided_copy<false>(dy.data<T>(), dx.data<T>(), dy.numel(), base, walk, cuda::stream(dx));
  });
  cuda::check_launch("slice_backward");
  return {dx};
}

// --- concat -------------------------------------------------------------------------------------

std::vector<Tensor> concat_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& first = in[0];
  const ConcatPlan plan = concat_plan(in, attrs);
  Tensor y = empty(plan.out_shape, first.dtype, first.device());
  if (y.numel() == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  const size_t es = dtype_size(first.dtype);
  char* dst = static_cast<char*>(y.raw());
  for (size_t i = 0; i < in.size(); ++i) {
    if (plan.chunk[i] == 0) continue;
    const size_t width = (size_t)plan.chunk[i] * es, pitch = (size_t)plan.out_row * es;
    char* at = dst + (size_t)plan.at[i] * es;
    if (plan.outer == 1) {
      copy_async(at, in[i].raw(), width, stream, "concat");
    } else if (pitch > (size_t)std::numeric_limits<int32_t>::max()) {
      // past cudaMemcpy2D's largest pitch (memPitch, 2^31 - 1 bytes): one copy per row
      const char* src = static_cast<const char*>(in[i].raw());
      for (int64_t o = 0; o < plan.outer; ++o)
        copy_async(at + (size_t)o * pitch, src + (size_t)o * width, width, stream, "concat");
    } else {
      // rows of `width` bytes from the packed input into rows of `pitch` bytes of the output
      cuda::check(cudaMemcpy2DAsync(at, pitch, in[i].raw(), width, width, (size_t)plan.outer,
                                    cudaMemcpyDeviceToDevice, stream),
                  "concat");
    }
  }
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(reshape, CUDA, reshape_cuda);
KX_REGISTER_KERNEL(permute, CUDA, permute_cuda);
KX_REGISTER_KERNEL(slice, CUDA, slice_cuda);
KX_REGISTER_KERNEL(slice_backward, CUDA, slice_backward_cuda);
KX_REGISTER_KERNEL(concat, CUDA, concat_cuda);

}  // namespace kx
