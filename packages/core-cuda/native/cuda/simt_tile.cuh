// Building blocks of the SIMT tiled kernels (attention, GlobalPointer): 64 x 64 float tiles in
// shared memory, filled from storage of any floating dtype (widened to float32 on load), and
// 256-thread blocks in which each thread owns a 4 x 4 micro-tile of an output tile: rows
// ty + 16a and columns tx + 16b (a, b < 4), so that a row's 64 entries live in one half-warp.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/vec.cuh"
#include "kx/dtype.h"
#include "kx/reduce.h"

namespace kx::cuda {

constexpr int kTile = 64;          // rows and columns of a tile
constexpr int kLd = kTile + 1;     // shared row stride: the padding keeps column walks conflict-free
constexpr int kTileFloats = kTile * kLd;
constexpr int kTileThreads = 256;  // 16 x 16 threads
constexpr int kMicro = 4;          // each thread's micro-tile is kMicro x kMicro

// A thread's place in the 16 x 16 grid of micro-tiles.
struct Lane {
  int tx, ty;
  __device__ int row(int a) const { return ty + 16 * a; }
  __device__ int col(int b) const { return tx + 16 * b; }
};
__device__ inline Lane tile_lane() { return Lane{(int)threadIdx.x % 16, (int)threadIdx.x / 16}; }

// Element i of floating storage of dtype dt, as float32 (dt is uniform across the block).
__device__ inline float load_float(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::Float16: return to_float(static_cast<const half_t*>(p)[i]);
    case DType::BFloat16: return to_float(static_cast<const bfloat16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Stores v at element i of floating storage of dtype dt (round to nearest even for halves).
__device__ inline void store_float(void* p, DType dt, int64_t i, float v) {
  switch (dt) {
    case DType::Float16: static_cast<half_t*>(p)[i] = from_float<half_t>(v); break;
    case DType::BFloat16: static_cast<bfloat16_t*>(p)[i] = from_float<bfloat16_t>(v); break;
    default: static_cast<float*>(p)[i] = v;
  }
}

// A row-major matrix in device storage: element (r, c) is at base[offset + r * ld + c]; rows
// r >= rows and columns c >= cols read as zero.
struct MatrixRef {
  const void* base;
  DType dt;
  int64_t offset, rows, cols, ld;
};

template <class T>
__device__ void load_tile_typed(float* dst, const MatrixRef& m, int64_t row0, int64_t col0) {
  const T* src = static_cast<const T*>(m.base) + m.offset;
  constexpr int kVec = Vec16<T>::N;
  // 16-byte loads when the tile's columns are all in range and every row starts 16-byte aligned.
  const bool vec = col0 + kTile <= m.cols && m.ld % kVec == 0 && (col0 % kVec) == 0 &&
                   (reinterpret_cast<uintptr_t>(src) & 15u) == 0;
  if (vec) {
    constexpr int kPerRow = kTile / kVec;
    for (int e = threadIdx.x; e < kTile * kPerRow; e += kTileThreads) {
      const int r = e / kPerRow, c = (e % kPerRow) * kVec;
      const int64_t gr = row0 + r;
      float* out = dst + r * kLd + c;
      if (gr < m.rows) {
        float vals[kVec];
        load_vec(src + gr * m.ld + col0 + c, 0, vals);
#pragma unroll
        for (int v = 0; v < kVec; ++v) out[v] = vals[v];
      } else {
#pragma unroll
        for (int v = 0; v < kVec; ++v) out[v] = 0.0f;
      }
    }
    return;
  }
  for (int e = threadIdx.x; e < kTile * kTile; e += kTileThreads) {
    const int r = e / kTile, c = e % kTile;
    const int64_t gr = row0 + r, gc = col0 + c;
    dst[r * kLd + c] = (gr < m.rows && gc < m.cols) ? to_float(src[gr * m.ld + gc]) : 0.0f;
  }
}

// Fills dst (a [kTile][kLd] shared tile) with rows [row0, row0 + 64) x columns [col0, col0 + 64) of m.
__device__ inline void load_tile(float* dst, const MatrixRef& m, int64_t row0, int64_t col0) {
  switch (m.dt) {
    case DType::Float16: load_tile_typed<half_t>(dst, m, row0, col0); break;
    case DType::BFloat16: load_tile_typed<bfloat16_t>(dst, m, row0, col0); break;
    default: load_tile_typed<float>(dst, m, row0, col0);
  }
}

// acc[a][b] += sum over k < depth of A(row a, k) * B(k, col b) for the thread's micro-tile, where
// A is a shared tile stored [row][k] (kATrans: [k][row]) and B is stored [k][col] (kBTrans: [col][k]).
template <bool kATrans, bool kBTrans>
__device__ __forceinline__ void tile_product(float (&acc)[kMicro][kMicro], const float* A, const float* B, int depth,
                                             Lane l) {
#pragma unroll 4
  for (int k = 0; k < depth; ++k) {
    float av[kMicro], bv[kMicro];
#pragma unroll
    for (int a = 0; a < kMicro; ++a) av[a] = kATrans ? A[k * kLd + l.row(a)] : A[l.row(a) * kLd + k];
#pragma unroll
    for (int b = 0; b < kMicro; ++b) bv[b] = kBTrans ? B[l.col(b) * kLd + k] : B[k * kLd + l.col(b)];
#pragma unroll
    for (int a = 0; a < kMicro; ++a)
#pragma unroll
      for (int b = 0; b < kMicro; ++b) acc[a][b] += av[a] * bv[b];
  }
}

// acc += A · Bᵀ over the full shared dimension of two matrices (rows of A from row0, rows of B from
// col0, depth chunks of 64 staged through the shared tiles a_tile and b_tile).
__device__ inline void product_nt(float (&acc)[kMicro][kMicro], const MatrixRef& A, int64_t row0, const MatrixRef& B,
                                  int64_t col0, int64_t depth, float* a_tile, float* b_tile, Lane l) {
  for (int64_t d0 = 0; d0 < depth; d0 += kTile) {
    load_tile(a_tile, A, row0, d0);
    load_tile(b_tile, B, col0, d0);
    __syncthreads();
    tile_product<false, true>(acc, a_tile, b_tile, (int)(depth - d0 < kTile ? depth - d0 : kTile), l);
    __syncthreads();
  }
}

// Reductions across the 16 threads (tx) that hold one row of a tile.
__device__ __forceinline__ float row_group_max_nan(float v) {
#pragma unroll
  for (int off = 8; off > 0; off /= 2) {
    v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, off));
  }
  return v;
}
__device__ __forceinline__ float row_group_sum(float v) {
#pragma unroll
  for (int off = 8; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

inline int64_t tiles_of(int64_t n) { return (n + kTile - 1) / kTile; }

// Launches a kernel with `bytes` of dynamic shared memory, raising the kernel's limit first (the
// default is 48 KiB). Errors are left for the caller's check of the last error (runtime.h's
// check_launch).
template <class... Params, class... Args>
void launch_with_shared(void (*kernel)(Params...), dim3 grid, int threads, int bytes, cudaStream_t stream,
                        Args... args) {
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kernel<<<grid, threads, bytes, stream>>>(args...);
}

// Launches a tiled kernel (kTileThreads threads) with `tiles` shared [kTile][kLd] float tiles.
template <class... Params, class... Args>
void launch_tiled(void (*kernel)(Params...), int tiles, dim3 grid, cudaStream_t stream, Args... args) {
  launch_with_shared(kernel, grid, kTileThreads, tiles * kTileFloats * (int)sizeof(float), stream, args...);
}

}  // namespace kx::cuda
