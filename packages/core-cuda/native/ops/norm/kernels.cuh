// The CUDA kernels of LayerNorm and RMSNorm over the last axis (used by ops/norm/norm.cu and the
// kernel lab), with ops/norm/math.h's element math and float32 statistics.
//
// Forward: a group owns a row (cuda/row_group.cuh): LayerNorm sums x, then (x - mean)² (two passes,
// as the CPU: no cancellation), then writes y; RMSNorm sums x², then writes y.
// Backward: a fixed number of blocks (norm_partial_blocks, a function of the sizes only), each over
// a run of rows with the whole block on a row. A thread owns the same columns in every row, so it
// adds that row's dgamma/dbeta terms into accumulators no other thread touches (shared memory, or
// the block's slice of `partials` for very wide rows): no atomics. sum_partials_kernel then adds the
// blocks' partial rows in block order and rounds once: deterministic.
#pragma once
#include "cuda/row_group.cuh"
#include "ops/norm/math.h"

namespace kx::cuda {

// Partial dgamma/dbeta rows of a backward pass: about eight rows per block, at most 512 blocks.
inline int64_t norm_partial_blocks(int64_t rows) {
  const int64_t b = rows / 8;
  return b < 1 ? 1 : b > 512 ? 512 : b;
}

// Shared-memory accumulators up to the default 48 KB a block can have without opting in, less room
// for the kernels' static shared memory (block_reduce's scratch), which counts against the same 48 KB.
constexpr size_t kNormSmemBytes = 47 * 1024;

template <class T, bool kWarp, bool kVec>
__global__ void layer_norm_kernel(const T* x, const T* gamma, const T* beta, T* y, float* mean, float* rstd,
                                  int64_t rows, int64_t d, float eps) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  for (int64_t r = g.first_row(); r < rows; r += g.row_stride()) {
    const T* xr = x + r * d;
    float acc = 0.0f;
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float v[P];
      load_pack<T, kVec>(xr, i, v);
#pragma unroll
      for (int k = 0; k < P; ++k) acc += v[k];
    });
    const float mu = d > 0 ? group_reduce<kWarp>(acc, SumOp{}) / (float)d : 0.0f;
    acc = 0.0f;
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float v[P];
      load_pack<T, kVec>(xr, i, v);
#pragma unroll
      for (int k = 0; k < P; ++k) acc += (v[k] - mu) * (v[k] - mu);
    });
    const float var = d > 0 ? group_reduce<kWarp>(acc, SumOp{}) / (float)d : 0.0f;
    const float rs = norm_rstd(var, eps);
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float v[P], gv[P], bv[P];
      load_pack<T, kVec>(xr, i, v);
      load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
      load_param_pack<T, kVec>(beta, i, 0.0f, bv);
#pragma unroll
      for (int k = 0; k < P; ++k) v[k] = layer_norm_elem(v[k], mu, rs, gv[k], bv[k]);
      store_pack<T, kVec>(y + r * d, i, v);
    });
    if (g.lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

template <class T, bool kWarp, bool kVec>
__global__ void rms_norm_kernel(const T* x, const T* gamma, T* y, float* rstd, int64_t rows, int64_t d, float eps) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  for (int64_t r = g.first_row(); r < rows; r += g.row_stride()) {
    const T* xr = x + r * d;
    float acc = 0.0f;
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float v[P];
      load_pack<T, kVec>(xr, i, v);
#pragma unroll
      for (int k = 0; k < P; ++k) acc += v[k] * v[k];
    });
    const float sq = group_reduce<kWarp>(acc, SumOp{});
    const float rs = norm_rstd(d > 0 ? sq / (float)d : 0.0f, eps);
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float v[P], gv[P];
      load_pack<T, kVec>(xr, i, v);
      load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
#pragma unroll
      for (int k = 0; k < P; ++k) v[k] = rms_norm_elem(v[k], rs, gv[k]);
      store_pack<T, kVec>(y + r * d, i, v);
    });
    if (g.lane == 0) rstd[r] = rs;
  }
}

// Block b covers rows [b·per_block, (b+1)·per_block) and leaves its dgamma row at partials[b·2d] and
// its dbeta row at partials[b·2d + d].
template <class T, bool kVec>
__global__ void layer_norm_backward_kernel(const T* dy, const T* x, const T* gamma, const float* mean,
                                           const float* rstd, T* dx, float* partials, int64_t rows, int64_t d,
                                           int64_t per_block, bool smem_acc) {
  constexpr int P = kPackOf<T, kVec>;
  extern __shared__ float shared_acc[];
  const RowGroup<false> g;
  float* const acc = smem_acc ? shared_acc : partials + blockIdx.x * 2 * d;
  g.template for_each_pack<P>(d, [&](int64_t i) {
    for (int k = 0; k < P; ++k) acc[i + k] = acc[d + i + k] = 0.0f;
  });
  const int64_t end = ((int64_t)blockIdx.x + 1) * per_block, r1 = end < rows ? end : rows;
  const float inv_n = 1.0f / (float)d;
  for (int64_t r = (int64_t)blockIdx.x * per_block; r < r1; ++r) {
    const T *dyr = dy + r * d, *xr = x + r * d;
    const float mu = mean[r], rs = rstd[r];
    float2 sums = {0.0f, 0.0f};  // Σ dy·γ, Σ dy·γ·x̂
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float dv[P], xv[P], gv[P];
      load_pack<T, kVec>(dyr, i, dv);
      load_pack<T, kVec>(xr, i, xv);
      load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        sums.x += dv[k] * gv[k];
        sums.y += dv[k] * gv[k] * ((xv[k] - mu) * rs);
      }
    });
    sums = block_reduce(sums, SumOp{});
    const float mean_g = sums.x * inv_n, mean_gx = sums.y * inv_n;
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float dv[P], xv[P], gv[P];
      load_pack<T, kVec>(dyr, i, dv);
      load_pack<T, kVec>(xr, i, xv);
      load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        const float xhat = (xv[k] - mu) * rs;
        acc[i + k] += dv[k] * xhat;
        acc[d + i + k] += dv[k];
        xv[k] = layer_norm_dx_elem(dv[k], gv[k], xhat, rs, mean_g, mean_gx);
      }
      store_pack<T, kVec>(dx + r * d, i, xv);
    });
  }
  if (smem_acc) {
    float* out = partials + blockIdx.x * 2 * d;
    g.template for_each_pack<P>(d, [&](int64_t i) {
      for (int k = 0; k < P; ++k) {
        out[i + k] = acc[i + k];
        out[d + i + k] = acc[d + i + k];
      }
    });
  }
}

// As layer_norm_backward_kernel with one partial row (dgamma) per block at partials[b·d].
template <class T, bool kVec>
__global__ void rms_norm_backward_kernel(const T* dy, const T* x, const T* gamma, const float* rstd, T* dx,
                                         float* partials, int64_t rows, int64_t d, int64_t per_block, bool smem_acc) {
  constexpr int P = kPackOf<T, kVec>;
  extern __shared__ float shared_acc[];
  const RowGroup<false> g;
  float* const acc = smem_acc ? shared_acc : partials + blockIdx.x * d;
  g.template for_each_pack<P>(d, [&](int64_t i) {
    for (int k = 0; k < P; ++k) acc[i + k] = 0.0f;
  });
  const int64_t end = ((int64_t)blockIdx.x + 1) * per_block, r1 = end < rows ? end : rows;
  for (int64_t r = (int64_t)blockIdx.x * per_block; r < r1; ++r) {
    const T *dyr = dy + r * d, *xr = x + r * d;
    const float rs = rstd[r];
    float dot = 0.0f;  // Σ dy·γ·x
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float dv[P], xv[P], gv[P];
      load_pack<T, kVec>(dyr, i, dv);
      load_pack<T, kVec>(xr, i, xv);
      load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
#pragma unroll
      for (int k = 0; k < P; ++k) dot += dv[k] * gv[k] * xv[k];
    });
    const float c = rms_norm_dx_coef(rs, block_reduce(dot, SumOp{}) / (float)d);
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float dv[P], xv[P], gv[P];
      load_pack<T, kVec>(dyr, i, dv);
      load_pack<T, kVec>(xr, i, xv);
      load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        acc[i + k] += rms_norm_dgamma_elem(dv[k], xv[k], rs);
        xv[k] = rms_norm_dx_elem(dv[k], gv[k], xv[k], rs, c);
      }
      store_pack<T, kVec>(dx + r * d, i, xv);
    });
  }
  if (smem_acc) {
    float* out = partials + blockIdx.x * d;
    g.template for_each_pack<P>(d, [&](int64_t i) {
      for (int k = 0; k < P; ++k) out[i + k] = acc[i + k];
    });
  }
}

// out[c] = Σ_b partials[b·stride + c], in block order, rounded once to T.
template <class T>
__global__ void sum_partials_kernel(const float* partials, int64_t blocks, int64_t stride, int64_t d, T* out) {
  for (int64_t c = thread_index(); c < d; c += grid_stride()) {
    float s = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) s += partials[b * stride + c];
    out[c] = from_float<T>(s);
  }
}

// Threads of a backward block: about one pack per thread, 64 to 512.
inline unsigned norm_backward_threads(int64_t packs) {
  const int64_t t = (packs + 31) / 32 * 32;
  return (unsigned)(t < 64 ? 64 : t > 512 ? 512 : t);
}

// --- launchers (on `stream`; `launch` overrides the forward's group choice for the kernel lab) ---

template <class T>
void launch_layer_norm(const T* x, const T* gamma, const T* beta, T* y, float* mean, float* rstd, int64_t rows,
                       int64_t d, float eps, cudaStream_t stream, const RowLaunch* launch = nullptr) {
  if (rows == 0) return;
  const bool vec = rows_vectorise<T>(d, x, gamma, beta, y);
  const RowLaunch l = launch ? *launch : row_launch(rows, vec ? d / Vec16<T>::N : d);
  bool_dispatch(l.warp, [&](auto warp) {
    bool_dispatch(vec, [&](auto v) {
      layer_norm_kernel<T, decltype(warp)::value, decltype(v)::value>
          <<<l.grid, l.threads, 0, stream>>>(x, gamma, beta, y, mean, rstd, rows, d, eps);
    });
  });
}

template <class T>
void launch_rms_norm(const T* x, const T* gamma, T* y, float* rstd, int64_t rows, int64_t d, float eps,
                     cudaStream_t stream, const RowLaunch* launch = nullptr) {
  if (rows == 0) return;
  const bool vec = rows_vectorise<T>(d, x, gamma, y);
  const RowLaunch l = launch ? *launch : row_launch(rows, vec ? d / Vec16<T>::N : d);
  bool_dispatch(l.warp, [&](auto warp) {
    bool_dispatch(vec, [&](auto v) {
      rms_norm_kernel<T, decltype(warp)::value, decltype(v)::value>
          <<<l.grid, l.threads, 0, stream>>>(x, gamma, y, rstd, rows, d, eps);
    });
  });
}

// partials: norm_partial_blocks(rows) · 2d floats of scratch. Nothing to do when d == 0.
template <class T>
void launch_layer_norm_backward(const T* dy, const T* x, const T* gamma, const float* mean, const float* rstd, T* dx,
                                T* dgamma, T* dbeta, float* partials, int64_t rows, int64_t d, cudaStream_t stream) {
  if (d == 0) return;
  const int64_t blocks = norm_partial_blocks(rows);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  const bool vec = rows_vectorise<T>(d, dy, x, gamma, dx);
  const size_t smem = 2 * (size_t)d * sizeof(float);
  const bool smem_acc = smem <= kNormSmemBytes;
  const unsigned threads = norm_backward_threads(vec ? d / Vec16<T>::N : d);
  bool_dispatch(vec, [&](auto v) {
    layer_norm_backward_kernel<T, decltype(v)::value><<<(unsigned)blocks, threads, smem_acc ? smem : 0, stream>>>(
        dy, x, gamma, mean, rstd, dx, partials, rows, d, per_block, smem_acc);
  });
  sum_partials_kernel<T><<<blocks_for(d, kThreads), kThreads, 0, stream>>>(partials, blocks, 2 * d, d, dgamma);
  sum_partials_kernel<T><<<blocks_for(d, kThreads), kThreads, 0, stream>>>(partials + d, blocks, 2 * d, d, dbeta);
}

// partials: norm_partial_blocks(rows) · d floats of scratch.
template <class T>
void launch_rms_norm_backward(const T* dy, const T* x, const T* gamma, const float* rstd, T* dx, T* dgamma,
                              float* partials, int64_t rows, int64_t d, cudaStream_t stream) {
  if (d == 0) return;
  const int64_t blocks = norm_partial_blocks(rows);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  const bool vec = rows_vectorise<T>(d, dy, x, gamma, dx);
  const size_t smem = (size_t)d * sizeof(float);
  const bool smem_acc = smem <= kNormSmemBytes;
  const unsigned threads = norm_backward_threads(vec ? d / Vec16<T>::N : d);
  bool_dispatch(vec, [&](auto v) {
    rms_norm_backward_kernel<T, decltype(v)::value><<<(unsigned)blocks, threads, smem_acc ? smem : 0, stream>>>(
        dy, x, gamma, rstd, dx, partials, rows, d, per_block, smem_acc);
  });
  sum_partials_kernel<T><<<blocks_for(d, kThreads), kThreads, 0, stream>>>(partials, blocks, d, d, dgamma);
}

}  // namespace kx::cuda
