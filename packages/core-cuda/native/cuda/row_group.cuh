// The machinery of the CUDA row kernels (softmax, cross-entropy, LayerNorm, RMSNorm), shared with
// their kernel-lab programs: a group of threads owns a row (one warp for short rows, several rows
// per block; the whole block for long ones), walks it in packs (16-byte vectors of cuda/vec.cuh
// when every row is aligned, single elements otherwise) and reduces in a fixed order, so results
// are deterministic and every thread of the group gets the same bits. Header-only, no addon types.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/reduce.h"
#include "kx/softmax.h"

namespace kx::cuda {

// Elements per pack: a 16-byte vector, or one element when rows are not all aligned.
template <class T, bool kVec> constexpr int kPackOf = kVec ? Vec16<T>::N : 1;

template <class T, bool kVec>
__device__ __forceinline__ void load_pack(const T* row, int64_t i, float (&out)[kPackOf<T, kVec>]) {
  if constexpr (kVec) load_vec(row + i, 0, out);
  else out[0] = to_float(row[i]);
}

template <class T, bool kVec>
__device__ __forceinline__ void store_pack(T* row, int64_t i, const float (&in)[kPackOf<T, kVec>]) {
  if constexpr (kVec) store_vec(row + i, 0, in);
  else row[i] = from_float<T>(in[0]);
}

// The pack of an optional per-feature parameter (gamma, beta) at i; `fill` when absent.
template <class T, bool kVec>
__device__ __forceinline__ void load_param_pack(const T* p, int64_t i, float fill, float (&out)[kPackOf<T, kVec>]) {
  if (p) {
    load_pack<T, kVec>(p, i, out);
  } else {
#pragma unroll
    for (int k = 0; k < kPackOf<T, kVec>; ++k) out[k] = fill;
  }
}

// The rows a group visits and its threads. kWarp: a warp per row; else the block is the group.
template <bool kWarp> struct RowGroup {
  int lane = kWarp ? (int)(threadIdx.x & 31) : (int)threadIdx.x;
  int width = kWarp ? 32 : (int)blockDim.x;
  __device__ int64_t first_row() const {
    return kWarp ? (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32 : (int64_t)blockIdx.x;
  }
  __device__ int64_t row_stride() const { return kWarp ? (int64_t)gridDim.x * (blockDim.x / 32) : gridDim.x; }
  // fn(i) for the first index of each pack of kPack elements this thread owns in a row of n (a
  // multiple of kPack). The same thread owns the same columns in every row.
  template <int kPack, class Fn> __device__ void for_each_pack(int64_t n, Fn fn) const {
    for (int64_t i = (int64_t)lane * kPack; i < n; i += (int64_t)width * kPack) fn(i);
  }
};

// Shuffles of the reduced value types.
__device__ __forceinline__ float shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ double shfl_xor(double v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ float2 shfl_xor(float2 v, int m) { return {shfl_xor(v.x, m), shfl_xor(v.y, m)}; }
__device__ __forceinline__ OnlineSoftmax shfl_xor(OnlineSoftmax v, int m) {
  OnlineSoftmax o;
  o.max = shfl_xor(v.max, m);
  o.s = shfl_xor(v.s, m);
  return o;
}
__device__ __forceinline__ float shfl0(float v) { return __shfl_sync(0xffffffffu, v, 0); }
__device__ __forceinline__ double shfl0(double v) { return __shfl_sync(0xffffffffu, v, 0); }
__device__ __forceinline__ float2 shfl0(float2 v) { return {shfl0(v.x), shfl0(v.y)}; }
__device__ __forceinline__ OnlineSoftmax shfl0(OnlineSoftmax v) {
  v.max = shfl0(v.max);
  v.s = shfl0(v.s);
  return v;
}

// The combining operations.
struct SumOp {
  template <class V> __device__ V operator()(V a, V b) const { return a + b; }
  __device__ float2 operator()(float2 a, float2 b) const { return {a.x + b.x, a.y + b.y}; }
};
struct MergeOp {
  __device__ OnlineSoftmax operator()(OnlineSoftmax a, const OnlineSoftmax& b) const {
    a.merge(b);
    return a;
  }
};

// Butterfly over the warp, then lane 0's value to all lanes (a merge with FMA contraction need not
// give the same bits in both orders).
template <class V, class Op> __device__ __forceinline__ V warp_reduce(V v, Op op) {
#pragma unroll
  for (int m = 16; m > 0; m /= 2) v = op(v, shfl_xor(v, m));
  return shfl0(v);
}

// The whole block (blockDim.x a multiple of 32): warps reduce, then every thread folds the warps'
// results in warp order. Safe to call repeatedly (the scratch is guarded by barriers).
template <class V, class Op> __device__ V block_reduce(V v, Op op) {
  __shared__ alignas(16) unsigned char scratch[32 * sizeof(V)];
  V* part = reinterpret_cast<V*>(scratch);
  v = warp_reduce(v, op);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  V r = part[0];
  for (int w = 1; w < (int)(blockDim.x / 32); ++w) r = op(r, part[w]);
  return r;
}

template <bool kWarp, class V, class Op> __device__ __forceinline__ V group_reduce(V v, Op op) {
  if constexpr (kWarp) return warp_reduce(v, op);
  else return block_reduce(v, op);
}

// How a row kernel is launched: a warp per row while a row is at most kWarpRowPacks packs (eight
// per lane), else a block per row with about four packs per thread.
constexpr int64_t kWarpRowPacks = 256;
constexpr int kRowWarpsPerBlock = 8;

struct RowLaunch {
  bool warp;
  unsigned grid;
  unsigned threads;
};

inline RowLaunch row_launch(int64_t rows, int64_t packs) {
  if (packs <= kWarpRowPacks) return {true, blocks_for(rows, kRowWarpsPerBlock), 32 * kRowWarpsPerBlock};
  int64_t threads = (packs / 4 + 31) / 32 * 32;
  threads = threads < 128 ? 128 : threads > 1024 ? 1024 : threads;
  return {false, blocks_for(rows, 1), (unsigned)threads};
}

// Calls f(std::true_type) or f(std::false_type): a run-time flag as a template argument.
template <class F> void bool_dispatch(bool b, F&& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// Whether rows of n elements of T can be walked in 16-byte packs: every pointer aligned and n a
// multiple of the pack (so every row is aligned too). Null pointers (absent operands) pass.
template <class T, class... Ptrs> bool rows_vectorise(int64_t n, const Ptrs*... ptrs) {
  return n % Vec16<T>::N == 0 && ((ptrs == nullptr || aligned16(ptrs)) && ...);
}

// A row's max and sum of exponentials (kx::OnlineSoftmax) folded in one pass by the row's group
// and merged across it: the first pass of the softmax and cross-entropy row kernels.
template <class T, bool kWarp, bool kVec>
__device__ __forceinline__ OnlineSoftmax row_softmax_state(const RowGroup<kWarp>& g, const T* row, int64_t C) {
  constexpr int P = kPackOf<T, kVec>;
  OnlineSoftmax st;
  g.template for_each_pack<P>(C, [&](int64_t i) {
    float v[P];
    load_pack<T, kVec>(row, i, v);
#pragma unroll
    for (int k = 0; k < P; ++k) st.add(v[k]);
  });
  return group_reduce<kWarp>(st, MergeOp{});
}

}  // namespace kx::cuda
