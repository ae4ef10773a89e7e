// Column sums over rows for the CUDA backward passes of the fused tier (bias_gelu's dbias in
// ops/elementwise/elementwise.cu; the residual norms' dgamma/dbeta in ops/norm/norm.cu): out[c] =
// Σ_rows term(r, c), deterministic without float atomics. A tiled kernel writes one partial row per
// chunk of rows and a second pass adds the chunks in order; the chunk count is a function of the
// sizes only, never of the device, so the bits do not depend on the GPU.
#pragma once
#include <cstdint>

#include "cuda/row_group.cuh"
#include "cuda/runtime.h"
#include "kx/tensor.h"

namespace kx::cuda {

// A block is kColLanes × kRowLanes threads over a tile of kColLanes packs: lanes along x take
// consecutive packs of a row (coalesced), lanes along y take every kRowLanes-th row of the chunk.
constexpr int kColLanes = 32;
constexpr int kRowLanes = 8;

struct ColumnPlan {
  unsigned tiles = 1;   // gridDim.x: column tiles
  unsigned chunks = 1;  // gridDim.y: row chunks, each with its own partial sums
  int64_t rows_per_chunk = 1;
};

// A function of the sizes only (not of the device), so the order of every sum is fixed.
inline ColumnPlan column_plan(int64_t rows, int64_t packs) {
  constexpr int64_t kTargetBlocks = 2048;
  ColumnPlan p;
  const int64_t tiles = (packs + kColLanes - 1) / kColLanes;
  p.tiles = (unsigned)(tiles > 0 ? tiles : 1);
  int64_t chunks = (kTargetBlocks + p.tiles - 1) / p.tiles;
  const int64_t most = (rows + kRowLanes - 1) / kRowLanes;
  if (chunks > most) chunks = most;
  if (chunks > 65535) chunks = 65535;
  if (chunks < 1) chunks = 1;
  p.rows_per_chunk = rows > 0 ? (rows + chunks - 1) / chunks : 1;
  p.chunks = (unsigned)(rows > 0 ? (rows + p.rows_per_chunk - 1) / p.rows_per_chunk : 1);
  return p;
}

// partials[(chunk * kSums + k) * d + c] = Σ over the chunk's rows of term k at column c. The term
// adds row r's contribution at the pack starting at column c into acc (and may write outputs).
template <class T, bool kVec, int kSums, class Term>
__global__ void __launch_bounds__(kColLanes* kRowLanes)
    column_partials_kernel(Term term, int64_t rows, int64_t d, int64_t rows_per_chunk, float* __restrict__ partials) {
  constexpr int P = kPackOf<T, kVec>;
  __shared__ float folded[kRowLanes][kSums][kColLanes * P];
  const int64_t c = ((int64_t)blockIdx.x * kColLanes + threadIdx.x) * P;
  const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  float acc[kSums][P] = {};
  if (c < d)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) term(r, c, acc);
#pragma unroll
  for (int k = 0; k < kSums; ++k)
#pragma unroll
    for (int j = 0; j < P; ++j) folded[threadIdx.y][k][threadIdx.x * P + j] = acc[k][j];
  __syncthreads();
  // The row lanes fold in lane order; each thread of the block writes some of the tile's sums.
  const int tid = threadIdx.y * kColLanes + threadIdx.x;
  for (int e = tid; e < kSums * kColLanes * P; e += kColLanes * kRowLanes) {
    const int k = e / (kColLanes * P), col = e % (kColLanes * P);
    const int64_t at = (int64_t)blockIdx.x * kColLanes * P + col;
    if (at >= d) continue;
    float s = 0.0f;
    for (int y = 0; y < kRowLanes; ++y) s += folded[y][k][col];
    partials[((int64_t)blockIdx.y * kSums + k) * d + at] = s;
  }
}

// out_k[c] = Σ_chunk partials[(chunk * kSums + k) * d + c], in chunk order, rounded once.
template <class T, int kSums>
__global__ void sum_chunks_kernel(const float* __restrict__ partials, int64_t chunks, int64_t d, T* out0, T* out1) {
  for (int64_t c = cuda::thread_index(); c < d; c += cuda::grid_stride()) {
#pragma unroll
    for (int k = 0; k < kSums; ++k) {
      float s = 0.0f;
      for (int64_t ch = 0; ch < chunks; ++ch) s += partials[(ch * kSums + k) * d + c];
      (k == 0 ? out0 : out1)[c] = from_float<T>(s);
    }
  }
}

// Runs a column reduction of kSums terms into out0 (and out1), [d] tensors of T.
template <class T, bool kVec, int kSums, class Term>
void column_sums(const Term& term, int64_t rows, int64_t d, const Tensor& out0, const Tensor* out1,
                 cudaStream_t stream, const char* what) {
  const ColumnPlan p = column_plan(rows, d / kPackOf<T, kVec>);
  Tensor partials = empty({(int64_t)p.chunks * kSums * d}, DType::Float32, out0.device());
  column_partials_kernel<T, kVec, kSums><<<dim3(p.tiles, p.chunks), dim3(kColLanes, kRowLanes), 0, stream>>>(
      term, rows, d, p.rows_per_chunk, partials.data<float>());
  cuda::check_launch(what);
  sum_chunks_kernel<T, kSums><<<cuda::blocks_for(d, cuda::kThreads), cuda::kThreads, 0, stream>>>(
      partials.data<float>(), p.chunks, d, out0.data<T>(), out1 ? out1->data<T>() : nullptr);
  cuda::check_launch(what);
}

}  // namespace kx::cuda
