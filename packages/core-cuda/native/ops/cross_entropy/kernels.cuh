// The CUDA kernels of softmax cross-entropy with ignore-index (used by
// ops/cross_entropy/cross_entropy.cu and the kernel lab). A group owns a row (cuda/row_group.cuh; a
// block for vocabulary-sized rows): one pass over the logits folds the max and the sum of
// exponentials (kx::OnlineSoftmax), giving the row's loss lse - x[label]; when a gradient is asked,
// a second pass writes scale * (softmax(x) - onehot(label)) (kx::cross_entropy_grad_elem). Ignored
// rows have loss 0 and a zero gradient. The mean over counted rows is one block summing the row
// losses in a fixed order.
#pragma once
#include "cuda/row_group.cuh"

namespace kx::cuda {

// row_loss (when not null) gets each row's loss, dx (when not null) its gradient with scale
// `*scale_dev` when given, else `scale`.
template <class T, bool kWarp, bool kVec>
__global__ void cross_entropy_rows_kernel(const T* x, const int32_t* labels, int64_t rows, int64_t C, int64_t ignore,
                                          const float* scale_dev, float scale, float* row_loss, T* dx) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  const float sc = scale_dev ? *scale_dev : scale;
  for (int64_t r = g.first_row(); r < rows; r += g.row_stride()) {
    const int64_t label = labels[r];
    const T* xr = x + r * C;
    T* dxr = dx ? dx + r * C : nullptr;
    if (label == ignore) {
      if (row_loss && g.lane == 0) row_loss[r] = 0.0f;
      if (dxr) {
        float zero[P] = {};
        g.template for_each_pack<P>(C, [&](int64_t i) { store_pack<T, kVec>(dxr, i, zero); });
      }
      continue;
    }
    const OnlineSoftmax st = row_softmax_state<T, kWarp, kVec>(g, xr, C);
    if (row_loss && g.lane == 0) row_loss[r] = st.lse() - to_float(xr[label]);
    if (!dxr) continue;
    const float m = st.max, k_scale = sc / st.sum();
    g.template for_each_pack<P>(C, [&](int64_t i) {
      float v[P];
      load_pack<T, kVec>(xr, i, v);
#pragma unroll
      for (int k = 0; k < P; ++k) v[k] = cross_entropy_grad_elem(v[k], m, k_scale, sc, i + k == label);
      store_pack<T, kVec>(dxr, i, v);
    });
  }
}

// *loss = Σ row_loss / count, one block, each thread summing a fixed stride then the block in order.
static __global__ void cross_entropy_mean_kernel(const float* row_loss, int64_t rows, float count, float* loss) {
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) acc += row_loss[i];
  acc = block_reduce(acc, SumOp{});
  if (threadIdx.x == 0) *loss = acc / count;  // 0 / 0 = NaN when every row is ignored, as PyTorch
}

// *scale = dloss / count (the backward's gradient scale, dloss read on the device).
template <class D> __global__ void cross_entropy_scale_kernel(const D* dloss, float count, float* scale) {
  *scale = to_float(dloss[0]) / count;
}

// The row pass on `stream`; `launch` overrides the group choice (the kernel lab times both).
template <class T>
void launch_cross_entropy_rows(const T* x, const int32_t* labels, int64_t rows, int64_t C, int64_t ignore,
                               const float* scale_dev, float scale, float* row_loss, T* dx, cudaStream_t stream,
                               const RowLaunch* launch = nullptr) {
  if (rows == 0) return;
  const bool vec = rows_vectorise<T>(C, x, dx);
  const RowLaunch l = launch ? *launch : row_launch(rows, vec ? C / Vec16<T>::N : C);
  bool_dispatch(l.warp, [&](auto warp) {
    bool_dispatch(vec, [&](auto v) {
      cross_entropy_rows_kernel<T, decltype(warp)::value, decltype(v)::value>
          <<<l.grid, l.threads, 0, stream>>>(x, labels, rows, C, ignore, scale_dev, scale, row_loss, dx);
    });
  });
}

inline void launch_cross_entropy_mean(const float* row_loss, int64_t rows, int64_t count, float* loss,
                                      cudaStream_t stream) {
  cross_entropy_mean_kernel<<<1, 1024, 0, stream>>>(row_loss, rows, (float)count, loss);
}

}  // namespace kx::cuda
