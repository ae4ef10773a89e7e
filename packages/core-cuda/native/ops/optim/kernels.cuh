// The CUDA kernels of the fused optimizer updates (used by ops/optim/optim.cu and the kernel lab).
// Each element runs ops/optim/math.h's math in double, as the CPU does, and stores float32 state
// and the parameter's dtype once per step. Reductions (Tiger's gradient check and parameter RMS,
// the global norm) are two passes over a grid whose size depends only on n, each block summing a
// fixed stride and the partials then summed in block order: deterministic, no atomics. Tiger's
// decision (finite gradient or not) stays on the device: the update kernel reads the flag, so
// nothing waits on the host.
#pragma once
#include "cuda/row_group.cuh"
#include "ops/optim/math.h"

namespace kx::cuda {

constexpr int kOptimReduceBlocks = 1024;  // most partials of a reduction pass

inline unsigned optim_partial_blocks(int64_t n) {
  const unsigned b = blocks_for(n, 4 * kThreads);
  return b < kOptimReduceBlocks ? b : kOptimReduceBlocks;
}

// Tiger's per-call device state: whether the gradient was finite, and η for rms none|tensor.
struct TigerState {
  double eta;
  int finite;
};

// Tiger's constants for the update kernel.
struct TigerStep {
  double lr, b1, b2, wd, shrink, centre, gscale;
  bool update;
};

// Per block: whether any gradient element is NaN/Inf (v − v ≠ 0, the CPU's test) and, when
// need_sq, Σ θ² in double.
template <class P, class G>
__global__ void tiger_prepass_kernel(const P* th, const G* g, int64_t n, bool need_sq, double* part_sq, int* part_bad) {
  double sq = 0.0;
  int bad = 0;
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    const float v = to_float(g[i]);
    bad |= (v - v) != 0.0f;
    if (need_sq) {
      const double t = to_float(th[i]);
      sq += t * t;
    }
  }
  bad = __syncthreads_or(bad);
  sq = block_reduce(sq, SumOp{});
  if (threadIdx.x == 0) {
    part_sq[blockIdx.x] = sq;
    part_bad[blockIdx.x] = bad;
  }
}

// One block: folds the partials into the state and the op's uint8 result (1: finite).
static __global__ void tiger_finish_kernel(const double* part_sq, const int* part_bad, int parts, int64_t n, double lr,
                                           bool tensor_rms, TigerState* state, uint8_t* finite_out) {
  double sq = 0.0;
  int bad = 0;
  for (int b = threadIdx.x; b < parts; b += blockDim.x) {
    sq += part_sq[b];
    bad |= part_bad[b];
  }
  bad = __syncthreads_or(bad);
  sq = block_reduce(sq, SumOp{});
  if (threadIdx.x == 0) {
    state->finite = !bad;
    state->eta = tensor_rms ? lr * sqrt(sq / (double)n) : lr;
    *finite_out = bad ? 0 : 1;
  }
}

// η of each row of `cols` elements: lr · RMS(row), one block per row.
template <class P> __global__ void tiger_row_eta_kernel(const P* th, int64_t rows, int64_t cols, double lr, double* eta) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    double sq = 0.0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const double t = to_float(th[r * cols + c]);
      sq += t * t;
    }
    sq = block_reduce(sq, SumOp{});
    if (threadIdx.x == 0) eta[r] = lr * sqrt(sq / (double)cols);
  }
}

template <class P, class G>
__device__ __forceinline__ void tiger_elem_step(P& th, const G& g, float& m, double eta, const TigerStep& s) {
  const float mi = (float)tiger_momentum<double>(m, s.gscale * to_float(g), s.b1, s.b2);
  m = mi;
  if (s.update) th = from_float<P>((float)sign_step<double>(to_float(th), mi, eta, s.wd));
}

// The step on every element: the guard's shrink when the gradient was not finite, else the
// momentum and (on the group's last micro-step) the sign update. kRows: η per row of `cols`
// (blocks over rows), else state->eta.
template <class P, class G, bool kRows>
__global__ void tiger_update_kernel(P* th, const G* g, float* m, int64_t n, int64_t cols, const TigerState* state,
                                    const double* row_eta, TigerStep s) {
  if (!state->finite) {
    for (int64_t i = thread_index(); i < n; i += grid_stride())
      th[i] = from_float<P>((float)shrink_toward<double>(to_float(th[i]), s.centre, s.shrink));
    return;
  }
  if constexpr (kRows) {
    for (int64_t r = blockIdx.x; r * cols < n; r += gridDim.x)
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        tiger_elem_step(th[r * cols + c], g[r * cols + c], m[r * cols + c], row_eta[r], s);
  } else {
    const double eta = state->eta;
    for (int64_t i = thread_index(); i < n; i += grid_stride()) tiger_elem_step(th[i], g[i], m[i], eta, s);
  }
}

template <class P, class G>
__global__ void lion_kernel(P* th, const G* g, float* m, int64_t n, double lr, double beta1, double beta2, double wd,
                            double gscale) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    double t = to_float(th[i]), mi = m[i];
    lion_elem<double>(t, mi, gscale * to_float(g[i]), lr, beta1, beta2, wd);
    th[i] = from_float<P>((float)t);
    m[i] = (float)mi;
  }
}

template <class P, class G>
__device__ __forceinline__ void adamw_at(P* th, const G* g, float* m, float* v, int64_t i, const AdamWCoef<double>& c,
                                         double gscale) {
  double t = to_float(th[i]), mi = m[i], vi = v[i];
  adamw_elem<double>(t, mi, vi, gscale * to_float(g[i]), c);
  th[i] = from_float<P>((float)t);
  m[i] = (float)mi;
  v[i] = (float)vi;
}

template <class P, class G>
__global__ void adamw_kernel(P* th, const G* g, float* m, float* v, int64_t n, AdamWCoef<double> c, double gscale) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) adamw_at(th, g, m, v, i, c, gscale);
}

// One parameter of a list launch (adamw_list_kernel): its tensors, its size, and the number of the
// list's first chunk that is its.
struct AdamWSlice {
  void* th;
  const void* g;
  float* m;
  float* v;
  int64_t n;
  int64_t first_chunk;
};
constexpr int64_t kAdamWChunk = 8192;  // elements a block takes at a time in a list launch

// AdamW over a list of parameters (one dtype pair) in one launch, as PyTorch's fused AdamW: the
// list's elements are cut into chunks of kAdamWChunk numbered across the list, slices in order and
// none empty; blocks take chunks with a grid stride and find the slice by binary search.
template <class P, class G>
__global__ void adamw_list_kernel(const AdamWSlice* slices, int count, int64_t chunks, AdamWCoef<double> c,
                                  double gscale) {
  for (int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    int lo = 0, hi = count - 1;  // the last slice whose first chunk is <= chunk
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (slices[mid].first_chunk <= chunk) lo = mid;
      else hi = mid - 1;
    }
    const AdamWSlice s = slices[lo];
    const int64_t begin = (chunk - s.first_chunk) * kAdamWChunk;
    const int64_t end = begin + kAdamWChunk < s.n ? begin + kAdamWChunk : s.n;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
      adamw_at(static_cast<P*>(s.th), static_cast<const G*>(s.g), s.m, s.v, i, c, gscale);
  }
}

template <bool kMomentum, bool kFirst, bool kNesterov, class P, class G>
__global__ void sgd_kernel(P* th, const G* g, float* buf, int64_t n, double gscale, SgdCoef<double> c) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    double t = to_float(th[i]), bi = kMomentum && !kFirst ? (double)buf[i] : 0.0;
    sgd_elem<kMomentum, kFirst, kNesterov, double>(t, bi, gscale * to_float(g[i]), c);
    th[i] = from_float<P>((float)t);
    if constexpr (kMomentum) buf[i] = (float)bi;
  }
}

// Σ x² in double per block of a fixed grid (part[blockIdx.x]).
template <class T> __global__ void sum_sq_partials_kernel(const T* x, int64_t n, double* part) {
  double sq = 0.0;
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    const double v = to_float(x[i]);
    sq += v * v;
  }
  sq = block_reduce(sq, SumOp{});
  if (threadIdx.x == 0) part[blockIdx.x] = sq;
}

// *out = sqrt(Σ part) as float32, one block, in a fixed order.
static __global__ void global_norm_finish_kernel(const double* part, int64_t parts, float* out) {
  double s = 0.0;
  for (int64_t b = threadIdx.x; b < parts; b += blockDim.x) s += part[b];
  s = block_reduce(s, SumOp{});
  if (threadIdx.x == 0) *out = (float)sqrt(s);
}

// *out = clip_factor(*norm), one thread.
template <class T> static __global__ void clip_factor_kernel(const T* norm, double max_norm, double scale, float* out) {
  *out = (float)clip_factor((double)to_float(*norm), max_norm, scale);
}

// --- launchers (on `stream`) -------------------------------------------------------------------

// Scratch bytes a Tiger step needs for n elements and `rows` rows of η.
inline size_t tiger_scratch_bytes(int64_t n, int64_t rows) {
  return sizeof(TigerState) + (size_t)optim_partial_blocks(n) * (sizeof(double) + sizeof(int)) +
         (size_t)rows * sizeof(double);
}

// One Tiger micro-step on n > 0 elements (rows × cols when rms is per row, else rows = 1);
// finite_out gets the op's result. `scratch` holds tiger_scratch_bytes(n, rows), 8-byte aligned.
template <class P, class G>
void launch_tiger(P* th, const G* g, float* m, int64_t n, int64_t rows, int64_t cols, bool tensor_rms,
                  const TigerStep& s, void* scratch, uint8_t* finite_out, cudaStream_t stream) {
  const unsigned parts = optim_partial_blocks(n);
  auto* state = static_cast<TigerState*>(scratch);
  auto* part_sq = reinterpret_cast<double*>(state + 1);
  auto* row_eta = part_sq + parts;
  auto* part_bad = reinterpret_cast<int*>(row_eta + rows);
  const bool per_row = s.update && rows > 1;
  tiger_prepass_kernel<<<parts, kThreads, 0, stream>>>(th, g, n, s.update && tensor_rms, part_sq, part_bad);
  tiger_finish_kernel<<<1, 1024, 0, stream>>>(part_sq, part_bad, (int)parts, n, s.lr, s.update && tensor_rms, state,
                                              finite_out);
  if (per_row) {
    tiger_row_eta_kernel<<<blocks_for(rows, 1), kThreads, 0, stream>>>(th, rows, cols, s.lr, row_eta);
    tiger_update_kernel<P, G, true><<<blocks_for(rows, 1), kThreads, 0, stream>>>(th, g, m, n, cols, state, row_eta, s);
  } else {
    tiger_update_kernel<P, G, false>
        <<<blocks_for(n, kThreads), kThreads, 0, stream>>>(th, g, m, n, cols, state, row_eta, s);
  }
}

}  // namespace kx::cuda
