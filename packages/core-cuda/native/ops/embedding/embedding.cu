// Embedding lookup and its gradient on CUDA.
//
// Ids are validated on the device: a kernel records the first index whose id is outside the table
// (an atomicMin on the index, so "first" is well defined) and the host reads it back after the
// work, raising the CPU's E_ARG with the same message. The forward does this inside the gather.
//
// The backward is a deterministic scatter-add by row ownership: the (id, position) pairs are sorted
// by id with CUB's radix sort, which is stable, so each id's positions come out in increasing
// order; one block per run of equal ids then sums that run's dy rows in that order into float32
// and writes its table row once. That is the CPU's summation order, so float32 results match the
// CPU's bit for bit; rows no id names are zero.
#include <cub/device/device_radix_sort.cuh>

#include <cstdint>
#include <limits>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "ops/embedding/plan.h"

namespace kx {
namespace {

constexpr unsigned long long kNoBadId = ~0ull;

__device__ __forceinline__ void note_bad_id(unsigned long long* first_bad, int64_t index) {
  atomicMin(first_bad, (unsigned long long)index);
}

// A device word set to kNoBadId, for the kernels to lower.
Tensor bad_id_flag(Device device, cudaStream_t stream) {
  Tensor flag = empty({2}, DType::Int32, device);  // 8 bytes: one unsigned long long
  cuda::check(cudaMemsetAsync(flag.raw(), 0xff, sizeof(unsigned long long), stream), "embedding");
  return flag;
}

// Waits for the stream and raises the CPU's error if the kernels flagged an id.
void raise_bad_id(const Tensor& flag, const Tensor& ids, int64_t rows, const char* op, cudaStream_t stream) {
  unsigned long long first = 0;
  cuda::check(cudaMemcpyAsync(&first, flag.raw(), sizeof first, cudaMemcpyDeviceToHost, stream), op);
  cuda::check(cudaStreamSynchronize(stream), op);
  if (first == kNoBadId) return;
  int32_t id = 0;
  cuda::check(cudaMemcpyAsync(&id, ids.data<int32_t>() + first, sizeof id, cudaMemcpyDeviceToHost, stream), op);
  cuda::check(cudaStreamSynchronize(stream), op);
  fail_bad_id(op, id, (int64_t)first, rows);
}

__global__ void check_ids_kernel(const int32_t* __restrict__ ids, int64_t n, int64_t rows,
                                 unsigned long long* first_bad) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride)
    if (ids[i] < 0 || ids[i] >= rows) note_bad_id(first_bad, i);
}

// ---- forward: a dtype-blind row gather in units U (16 bytes when rows allow) ---------------------

template <class U>
__global__ void gather_rows_kernel(const int32_t* __restrict__ ids, const U* __restrict__ table, U* __restrict__ out,
                                   int64_t n, int64_t units, int64_t rows, unsigned long long* first_bad) {
  const int64_t total = n * units;
  const int64_t stride = cuda::grid_stride();
  for (int64_t k = cuda::thread_index(); k < total; k += stride) {
    const int64_t i = k / units, u = k - i * units;
    const int32_t id = ids[i];
    if (id < 0 || id >= rows) {
      if (u == 0) note_bad_id(first_bad, i);
      continue;
    }
    out[k] = table[(int64_t)id * units + u];
  }
}

template <class U>
void gather_rows(const Tensor& ids, const Tensor& table, Tensor& y, int64_t rows, size_t row_bytes,
                 unsigned long long* first_bad, cudaStream_t stream) {
  const int64_t n = ids.numel(), units = (int64_t)(row_bytes / sizeof(U));
  gather_rows_kernel<U><<<cuda::blocks_for(n * units, cuda::kThreads), cuda::kThreads, 0, stream>>>(
      ids.data<int32_t>(), static_cast<const U*>(table.raw()), static_cast<U*>(y.raw()), n, units, rows, first_bad);
}

std::vector<Tensor> embedding_cuda(const Inputs& in, const Attrs&) {
  const Tensor &ids = in[0], &table = in[1];
  const EmbeddingDims dims = embedding_dims(ids, table);
  Shape out_shape = ids.shape;
  out_shape.push_back(dims.d);
  Tensor y = empty(out_shape, table.dtype, table.device());
  if (dims.n == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  const Tensor flag = bad_id_flag(y.device(), stream);
  auto* first_bad = static_cast<unsigned long long*>(flag.raw());
  const size_t row_bytes = (size_t)dims.d * dtype_size(table.dtype);
  if (row_bytes == 0) {  // nothing to gather, but the ids are checked all the same, as on the CPU
    check_ids_kernel<<<cuda::blocks_for(dims.n, cuda::kThreads), cuda::kThreads, 0, stream>>>(
        ids.data<int32_t>(), dims.n, dims.rows, first_bad);
  } else if (row_bytes % 16 == 0 && cuda::aligned16(table.raw()) && cuda::aligned16(y.raw())) {
    gather_rows<uint4>(ids, table, y, dims.rows, row_bytes, first_bad, stream);
  } else {
    switch (dtype_size(table.dtype)) {
      case 2: gather_rows<uint16_t>(ids, table, y, dims.rows, row_bytes, first_bad, stream); break;
      case 4: gather_rows<uint32_t>(ids, table, y, dims.rows, row_bytes, first_bad, stream); break;
      default: fail(Code::Internal, "embedding: unexpected element size");
    }
  }
  cuda::check_launch("embedding");
  raise_bad_id(flag, ids, dims.rows, "embedding", stream);
  return {y};
}

// ---- backward ------------------------------------------------------------------------------------

__global__ void iota_kernel(int32_t* __restrict__ out, int64_t n) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride) out[i] = (int32_t)i;
}

// Block k owns the run of equal ids starting at sorted position k (blocks not at a run's start
// exit): it sums dy[pos] over the run, positions ascending, one column per thread.
template <class T>
__global__ void sum_runs_kernel(const uint32_t* __restrict__ keys, const int32_t* __restrict__ pos,
                                const T* __restrict__ dy, T* __restrict__ out, int64_t n, int64_t d) {
  const int64_t k = blockIdx.x;
  const uint32_t id = keys[k];
  if (k > 0 && keys[k - 1] == id) return;
  int64_t end = k + 1;
  while (end < n && keys[end] == id) ++end;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float acc = 0.0f;
    for (int64_t m = k; m < end; ++m) acc += to_float(dy[(int64_t)pos[m] * d + j]);
    out[(int64_t)id * d + j] = from_float<T>(acc);
  }
}

std::vector<Tensor> embedding_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &ids = in[0], &dy = in[1];
  const EmbeddingDims dims = embedding_backward_dims(ids, dy, attrs);
  const int64_t n = dims.n, d = dims.d;
  Tensor out = empty({dims.rows, d}, dy.dtype, dy.device());
  cudaStream_t stream = cuda::stream(out);
  if (n > 0) {
    const Tensor flag = bad_id_flag(out.device(), stream);
    check_ids_kernel<<<cuda::blocks_for(n, cuda::kThreads), cuda::kThreads, 0, stream>>>(
        ids.data<int32_t>(), n, dims.rows, static_cast<unsigned long long*>(flag.raw()));
    cuda::check_launch("embedding_backward");
    raise_bad_id(flag, ids, dims.rows, "embedding_backward", stream);
  }
  if (out.numel() == 0) return {out};
  cuda::zero(out);
  if (n == 0 || d == 0) return {out};
  KX_CHECK(n <= std::numeric_limits<int32_t>::max(), Arg, "embedding_backward: ", n,
           " ids exceed the 2^31 - 1 positions CUDA sorts");
  // Ids are now known to lie in [0, rows): sort them as unsigned keys over the bits rows needs.
  int end_bit = 1;
  while (end_bit < 32 && ((uint64_t)1 << end_bit) < (uint64_t)dims.rows) ++end_bit;
  const Device dev = out.device();
  Tensor positions = empty({n}, DType::Int32, dev);
  Tensor sorted_ids = empty({n}, DType::Int32, dev);
  Tensor sorted_pos = empty({n}, DType::Int32, dev);
  iota_kernel<<<cuda::blocks_for(n, cuda::kThreads), cuda::kThreads, 0, stream>>>(positions.data<int32_t>(), n);
  cuda::check_launch("embedding_backward");
  const auto* keys_in = reinterpret_cast<const uint32_t*>(ids.data<int32_t>());
  auto* keys_out = reinterpret_cast<uint32_t*>(sorted_ids.data<int32_t>());
  size_t temp_bytes = 0;
  cuda::check(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, positions.data<int32_t>(),
                                              sorted_pos.data<int32_t>(), (int)n, 0, end_bit, stream),
              "embedding_backward: sort");
  Tensor temp = empty({(int64_t)temp_bytes}, DType::UInt8, dev);
  cuda::check(cub::DeviceRadixSort::SortPairs(temp.raw(), temp_bytes, keys_in, keys_out, positions.data<int32_t>(),
                                              sorted_pos.data<int32_t>(), (int)n, 0, end_bit, stream),
              "embedding_backward: sort");
  const int threads = d >= 256 ? 256 : d >= 128 ? 128 : 64;
  KX_DISPATCH_FLOAT(dy.dtype, {
    sum_runs_kernel<<<(unsigned)n, threads, 0, stream>>>(keys_out, sorted_pos.data<int32_t>(), dy.data<scalar_t>(),
                                                         out.data<scalar_t>(), n, d);
  });
  cuda::check_launch("embedding_backward");
  return {out};
}

}  // namespace

KX_REGISTER_KERNEL(embedding, CUDA, embedding_cuda);
KX_REGISTER_KERNEL(embedding_backward, CUDA, embedding_backward_cuda);

}  // namespace kx
