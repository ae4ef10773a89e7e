// The CUDA kernels of softmax, log_softmax and softmax_backward (used by ops/softmax/softmax.cu and
// the kernel lab). The tensor is [outer, C, inner] around the axis. With inner == 1 a group owns a
// row (cuda/row_group.cuh): one pass folds the row max and the sum of exponentials together
// (kx::OnlineSoftmax), a second writes kx/softmax.h's element formula. With inner > 1 a thread owns
// a column of C strided elements, with neighbouring threads on neighbouring columns (coalesced).
#pragma once
#include "cuda/row_group.cuh"

namespace kx::cuda {

template <class T, bool kWarp, bool kVec, bool kLog>
__global__ void softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t C) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  for (int64_t r = g.first_row(); r < rows; r += g.row_stride()) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    const OnlineSoftmax st = row_softmax_state<T, kWarp, kVec>(g, xr, C);
    const float m = st.max, c = kLog ? logf(st.sum()) : 1.0f / st.sum();
    g.template for_each_pack<P>(C, [&](int64_t i) {
      float v[P];
      load_pack<T, kVec>(xr, i, v);
#pragma unroll
      for (int k = 0; k < P; ++k) v[k] = kLog ? log_softmax_elem(v[k], m, c) : softmax_elem(v[k], m, c);
      store_pack<T, kVec>(yr, i, v);
    });
  }
}

// dx from y = softmax(x) (dot = Σ dy·y) or y = log_softmax(x) (Σ dy).
template <class T, bool kWarp, bool kVec, bool kLog>
__global__ void softmax_backward_rows_kernel(const T* y, const T* dy, T* dx, int64_t rows, int64_t C) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  for (int64_t r = g.first_row(); r < rows; r += g.row_stride()) {
    const T *yr = y + r * C, *dyr = dy + r * C;
    T* dxr = dx + r * C;
    float acc = 0.0f;
    g.template for_each_pack<P>(C, [&](int64_t i) {
      float yv[P], dv[P];
      load_pack<T, kVec>(yr, i, yv);
      load_pack<T, kVec>(dyr, i, dv);
#pragma unroll
      for (int k = 0; k < P; ++k) acc += kLog ? dv[k] : dv[k] * yv[k];
    });
    const float red = group_reduce<kWarp>(acc, SumOp{});
    g.template for_each_pack<P>(C, [&](int64_t i) {
      float yv[P], dv[P];
      load_pack<T, kVec>(yr, i, yv);
      load_pack<T, kVec>(dyr, i, dv);
#pragma unroll
      for (int k = 0; k < P; ++k)
        dv[k] = kLog ? log_softmax_backward_elem(yv[k], dv[k], red) : softmax_backward_elem(yv[k], dv[k], red);
      store_pack<T, kVec>(dxr, i, dv);
    });
  }
}

template <class T, bool kLog>
__global__ void softmax_cols_kernel(const T* x, T* y, int64_t outer, int64_t C, int64_t inner) {
  for (int64_t col = thread_index(); col < outer * inner; col += grid_stride()) {
    const int64_t base = (col / inner) * C * inner + col % inner;
    OnlineSoftmax st;
    for (int64_t c = 0; c < C; ++c) st.add(to_float(x[base + c * inner]));
    const float m = st.max, s = kLog ? logf(st.sum()) : 1.0f / st.sum();
    for (int64_t c = 0; c < C; ++c) {
      const float v = to_float(x[base + c * inner]);
      y[base + c * inner] = from_float<T>(kLog ? log_softmax_elem(v, m, s) : softmax_elem(v, m, s));
    }
  }
}

template <class T, bool kLog>
__global__ void softmax_backward_cols_kernel(const T* y, const T* dy, T* dx, int64_t outer, int64_t C, int64_t inner) {
  for (int64_t col = thread_index(); col < outer * inner; col += grid_stride()) {
    const int64_t base = (col / inner) * C * inner + col % inner;
    float acc = 0.0f;
    for (int64_t c = 0; c < C; ++c) {
      const float d = to_float(dy[base + c * inner]);
      acc += kLog ? d : d * to_float(y[base + c * inner]);
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t at = base + c * inner;
      const float yv = to_float(y[at]), d = to_float(dy[at]);
      dx[at] = from_float<T>(kLog ? log_softmax_backward_elem(yv, d, acc) : softmax_backward_elem(yv, d, acc));
    }
  }
}

// softmax / log_softmax of [outer, C, inner] on `stream`. `launch` overrides the row kernel's
// group choice (the kernel lab times both).
template <class T>
void launch_softmax(const T* x, T* y, int64_t outer, int64_t C, int64_t inner, bool log, cudaStream_t stream,
                    const RowLaunch* launch = nullptr) {
  if (outer * C * inner == 0) return;
  if (inner > 1) {
    bool_dispatch(log, [&](auto lg) {
      softmax_cols_kernel<T, decltype(lg)::value><<<blocks_for(outer * inner, kThreads), kThreads, 0, stream>>>(
          x, y, outer, C, inner);
    });
    return;
  }
  const bool vec = rows_vectorise<T>(C, x, y);
  const RowLaunch l = launch ? *launch : row_launch(outer, vec ? C / Vec16<T>::N : C);
  bool_dispatch(l.warp, [&](auto warp) {
    bool_dispatch(vec, [&](auto v) {
      bool_dispatch(log, [&](auto lg) {
        softmax_rows_kernel<T, decltype(warp)::value, decltype(v)::value, decltype(lg)::value>
            <<<l.grid, l.threads, 0, stream>>>(x, y, outer, C);
      });
    });
  });
}

template <class T>
void launch_softmax_backward(const T* y, const T* dy, T* dx, int64_t outer, int64_t C, int64_t inner, bool log,
                             cudaStream_t stream) {
  if (outer * C * inner == 0) return;
  if (inner > 1) {
    bool_dispatch(log, [&](auto lg) {
      softmax_backward_cols_kernel<T, decltype(lg)::value>
          <<<blocks_for(outer * inner, kThreads), kThreads, 0, stream>>>(y, dy, dx, outer, C, inner);
    });
    return;
  }
  const bool vec = rows_vectorise<T>(C, y, dy, dx);
  const RowLaunch l = row_launch(outer, vec ? C / Vec16<T>::N : C);
  bool_dispatch(l.warp, [&](auto warp) {
    bool_dispatch(vec, [&](auto v) {
      bool_dispatch(log, [&](auto lg) {
        softmax_backward_rows_kernel<T, decltype(warp)::value, decltype(v)::value, decltype(lg)::value>
            <<<l.grid, l.threads, 0, stream>>>(y, dy, dx, outer, C);
      });
    });
  });
}

}  // namespace kx::cuda
