// The fused tier on CUDA: bias+GELU, residual+LayerNorm and residual+RMSNorm, forward and backward.
// The element math is kx/fused.h's and kx/norm.h's, the validation fused_plan.h's (all shared with
// fused.cpp). Row kernels use ops/row_group.cuh: a warp or a block owns a row and walks it in
// 16-byte packs when rows are aligned; each thread re-reads only the columns it wrote, so the sum
// s = x + residual is stored once and read back from cache. Parameter gradients (dbias, dgamma,
// dbeta) are column sums over rows: a tiled kernel writes per-chunk partials and a second pass adds
// the chunks in order, so results are deterministic without float atomics.
#include <type_traits>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/fused.h"
#include "kx/norm.h"
#include "ops/fused_plan.h"
#include "ops/row_group.cuh"

namespace kx {
namespace {

using cuda::kPackOf;
using cuda::load_pack;
using cuda::RowGroup;
using cuda::RowLaunch;
using cuda::store_pack;

template <class T> const T* optional_ptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// Calls launch(warp, vec, RowLaunch) with the row layout for rows of d elements of T, warp and vec as
// std::bool_constant.
template <class T, class Launch>
void launch_rows(int64_t rows, int64_t d, bool vec, Launch&& launch) {
  const RowLaunch l = cuda::row_launch(rows, vec ? d / cuda::Vec16<T>::N : d);
  cuda::bool_dispatch(l.warp, [&](auto warp) { cuda::bool_dispatch(vec, [&](auto v) { launch(warp, v, l); }); });
}

// --- column sums over rows (dbias, dgamma, dbeta) ----------------------------------------------

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
ColumnPlan column_plan(int64_t rows, int64_t packs) {
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

// --- bias + GELU -------------------------------------------------------------------------------

template <bool kTanh, bool kVec, class T>
__global__ void bias_gelu_kernel(const T* __restrict__ x, const T* __restrict__ bias, T* __restrict__ y, int64_t n,
                                 int64_t d) {
  constexpr int P = kPackOf<T, kVec>;
  for (int64_t i = cuda::thread_index() * P; i < n; i += cuda::grid_stride() * P) {
    float xv[P], bv[P];
    load_pack<T, kVec>(x, i, xv);
    load_pack<T, kVec>(bias, i % d, bv);
#pragma unroll
    for (int k = 0; k < P; ++k) xv[k] = bias_gelu<kTanh>(xv[k], bv[k]);
    store_pack<T, kVec>(y, i, xv);
  }
}

// dx = dy·gelu'(x + bias) at one pack of a row, also summed into dbias.
template <bool kTanh, bool kVec, class T>
struct BiasGeluGradTerm {
  static constexpr int P = kPackOf<T, kVec>;
  const T *dy, *x, *bias;
  T* dx;
  int64_t d;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[1][P]) const {
    float dyv[P], xv[P], bv[P];
    load_pack<T, kVec>(dy + r * d, c, dyv);
    load_pack<T, kVec>(x + r * d, c, xv);
    load_pack<T, kVec>(bias, c, bv);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      dyv[k] = bias_gelu_grad<kTanh>(dyv[k], xv[k], bv[k]);
      acc[0][k] += dyv[k];
    }
    store_pack<T, kVec>(dx + r * d, c, dyv);
  }
};

// Calls fn(tanh, vec) with both as std::bool_constant.
template <class Fn>
void with_gelu_layout(bool tanh, bool vec, Fn&& fn) {
  cuda::bool_dispatch(tanh, [&](auto t) { cuda::bool_dispatch(vec, [&](auto v) { fn(t, v); }); });
}

std::vector<Tensor> bias_gelu_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &bias = in[1];
  const BiasGeluPlan p = bias_gelu_plan(nullptr, x, bias, attrs, "bias_gelu");
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {y};
  cudaStream_t stream = cuda::stream(x);
  KX_DISPATCH_FLOAT(x.dtype, {
    using T = scalar_t;
    const T *px = x.data<T>(), *pb = bias.data<T>();
    T* py = y.data<T>();
    with_gelu_layout(p.tanh, cuda::rows_vectorise<T>(p.rows.d, px, pb, py), [&](auto tanh, auto vec) {
      constexpr int P = kPackOf<T, decltype(vec)::value>;
      bias_gelu_kernel<decltype(tanh)::value, decltype(vec)::value, T>
          <<<cuda::blocks_for(n / P, cuda::kThreads), cuda::kThreads, 0, stream>>>(px, pb, py, n, p.rows.d);
    });
  });
  cuda::check_launch("bias_gelu");
  return {y};
}

std::vector<Tensor> bias_gelu_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &dy = in[0], &x = in[1], &bias = in[2];
  const BiasGeluPlan p = bias_gelu_plan(&dy, x, bias, attrs, "bias_gelu_backward");
  const int64_t rows = p.rows.rows, d = p.rows.d;
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dbias = empty({d}, x.dtype, x.device());
  if (d == 0) return {dx, dbias};
  cudaStream_t stream = cuda::stream(x);
  KX_DISPATCH_FLOAT(x.dtype, {
    using T = scalar_t;
    const T *pdy = dy.data<T>(), *px = x.data<T>(), *pb = bias.data<T>();
    T* pdx = dx.data<T>();
    with_gelu_layout(p.tanh, cuda::rows_vectorise<T>(d, pdy, px, pb, pdx), [&](auto tanh, auto vec) {
      constexpr bool kTanh = decltype(tanh)::value, kVec = decltype(vec)::value;
      const BiasGeluGradTerm<kTanh, kVec, T> term{pdy, px, pb, pdx, d};
      column_sums<T, kVec, 1>(term, rows, d, dbias, nullptr, stream, "bias_gelu_backward");
    });
  });
  return {dx, dbias};
}

// --- residual + LayerNorm / RMSNorm ------------------------------------------------------------

// s = x + residual rounded to T (stored), then y = norm(s) with float32 statistics: LayerNorm's
// two-pass mean and variance (kLayer), or RMSNorm's mean square.
template <bool kLayer, bool kWarp, bool kVec, class T>
__global__ void add_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ res,
                                        const T* __restrict__ gamma, const T* __restrict__ beta, T* __restrict__ y,
                                        T* __restrict__ s, float* __restrict__ mean_out, float* __restrict__ rstd_out,
                                        int64_t rows, int64_t d, float eps) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  for (int64_t row = g.first_row(); row < rows; row += g.row_stride()) {
    const int64_t off = row * d;
    float acc = 0.0f;  // Σs (LayerNorm) or Σs² (RMSNorm)
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float xv[P], rv[P];
      load_pack<T, kVec>(x + off, i, xv);
      load_pack<T, kVec>(res + off, i, rv);
#pragma unroll
      for (int k = 0; k < P; ++k) xv[k] = to_float(from_float<T>(xv[k] + rv[k]));  // the stored sum
      store_pack<T, kVec>(s + off, i, xv);
#pragma unroll
      for (int k = 0; k < P; ++k) acc += kLayer ? xv[k] : xv[k] * xv[k];
    });
    acc = cuda::group_reduce<kWarp>(acc, cuda::SumOp());
    float mean = 0.0f, rstd;
    if constexpr (kLayer) {
      mean = d > 0 ? acc / (float)d : 0.0f;
      float dev = 0.0f;
      g.template for_each_pack<P>(d, [&](int64_t i) {
        float sv[P];
        load_pack<T, kVec>(s + off, i, sv);
#pragma unroll
        for (int k = 0; k < P; ++k) dev += (sv[k] - mean) * (sv[k] - mean);
      });
      dev = cuda::group_reduce<kWarp>(dev, cuda::SumOp());
      rstd = norm_rstd(d > 0 ? dev / (float)d : 0.0f, eps);
    } else {
      rstd = norm_rstd(d > 0 ? acc / (float)d : 0.0f, eps);
    }
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float sv[P], gv[P], bv[P];
      load_pack<T, kVec>(s + off, i, sv);
      cuda::load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
      if constexpr (kLayer) cuda::load_param_pack<T, kVec>(beta, i, 0.0f, bv);
#pragma unroll
      for (int k = 0; k < P; ++k)
        sv[k] = kLayer ? layer_norm_elem(sv[k], mean, rstd, gv[k], bv[k]) : rms_norm_elem(sv[k], rstd, gv[k]);
      store_pack<T, kVec>(y + off, i, sv);
    });
    if (g.lane == 0) {
      if constexpr (kLayer) mean_out[row] = mean;
      rstd_out[row] = rstd;
    }
  }
}

template <bool kLayer>
std::vector<Tensor> add_norm_cuda(const Inputs& in, const Attrs& attrs, const char* op) {
  const Tensor &x = in[0], &res = in[1], &gamma = in[2];
  const Tensor beta = kLayer ? in[3] : Tensor();
  const AddNormPlan p = add_norm_plan(x, res, gamma, beta, attrs, kLayer ? 1e-5 : 1e-6, op);
  const int64_t rows = p.rows.rows, d = p.rows.d;
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor s = empty(x.shape, x.dtype, x.device());
  Tensor mean = kLayer ? empty(p.rows.lead, DType::Float32, x.device()) : Tensor();
  Tensor rstd = empty(p.rows.lead, DType::Float32, x.device());
  if (rows > 0) {
    cudaStream_t stream = cuda::stream(x);
    KX_DISPATCH_FLOAT(x.dtype, {
      using T = scalar_t;
      const T *px = x.data<T>(), *pr = res.data<T>(), *pg = optional_ptr<T>(gamma), *pb = optional_ptr<T>(beta);
      T *py = y.data<T>(), *ps = s.data<T>();
      float* pm = kLayer ? mean.data<float>() : nullptr;
      const bool vec = cuda::rows_vectorise<T>(d, px, pr, pg, pb, py, ps);
      launch_rows<T>(rows, d, vec, [&](auto warp, auto v, RowLaunch l) {
        add_norm_forward_kernel<kLayer, decltype(warp)::value, decltype(v)::value, T>
            <<<l.grid, l.threads, 0, stream>>>(px, pr, pg, pb, py, ps, pm, rstd.data<float>(), rows, d, p.eps);
      });
    });
    cuda::check_launch(op);
  }
  if (kLayer) return {y, s, mean, rstd};
  return {y, s, rstd};
}

// dx of LayerNorm (kLayer) or RMSNorm at s, plus ds when given. LayerNorm needs the row means of
// g = dy·γ and g·x̂; RMSNorm the mean of g·s; both reduced as one float2.
template <bool kLayer, bool kWarp, bool kVec, class T>
__global__ void add_norm_backward_kernel(const T* __restrict__ dy, const T* __restrict__ ds, const T* __restrict__ s,
                                         const T* __restrict__ gamma, const float* __restrict__ mean,
                                         const float* __restrict__ rstd, T* __restrict__ dx, int64_t rows, int64_t d) {
  constexpr int P = kPackOf<T, kVec>;
  const RowGroup<kWarp> g;
  const float inv_d = d > 0 ? 1.0f / (float)d : 0.0f;
  for (int64_t row = g.first_row(); row < rows; row += g.row_stride()) {
    const int64_t off = row * d;
    const float m = kLayer ? mean[row] : 0.0f, rs = rstd[row];
    float2 acc = {0.0f, 0.0f};  // (Σg, Σg·x̂) for LayerNorm; (0, Σg·s) for RMSNorm
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float dyv[P], sv[P], gv[P];
      load_pack<T, kVec>(dy + off, i, dyv);
      load_pack<T, kVec>(s + off, i, sv);
      cuda::load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        const float gk = dyv[k] * gv[k];
        if constexpr (kLayer) {
          acc.x += gk;
          acc.y += gk * ((sv[k] - m) * rs);
        } else {
          acc.y += gk * sv[k];
        }
      }
    });
    acc = cuda::group_reduce<kWarp>(acc, cuda::SumOp());
    const float mean_g = acc.x * inv_d, mean_gx = acc.y * inv_d;
    const float c = kLayer ? 0.0f : rms_norm_dx_coef(rs, mean_gx);
    g.template for_each_pack<P>(d, [&](int64_t i) {
      float dyv[P], sv[P], gv[P], dsv[P];
      load_pack<T, kVec>(dy + off, i, dyv);
      load_pack<T, kVec>(s + off, i, sv);
      cuda::load_param_pack<T, kVec>(gamma, i, 1.0f, gv);
      if (ds) load_pack<T, kVec>(ds + off, i, dsv);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        float v = kLayer ? layer_norm_dx_elem(dyv[k], gv[k], (sv[k] - m) * rs, rs, mean_g, mean_gx)
                         : rms_norm_dx_elem(dyv[k], gv[k], sv[k], rs, c);
        if (ds) v += dsv[k];
        dyv[k] = v;
      }
      store_pack<T, kVec>(dx + off, i, dyv);
    });
  }
}

// The parameter gradients at one pack of a row: dγ += dy·x̂ and dβ += dy (LayerNorm), dγ += dy·s·rstd
// (RMSNorm).
template <bool kLayer, bool kVec, class T>
struct NormParamGradTerm {
  static constexpr int P = kPackOf<T, kVec>;
  static constexpr int kSums = kLayer ? 2 : 1;
  const T *dy, *s;
  const float *mean, *rstd;
  int64_t d;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[kSums][P]) const {
    float dyv[P], sv[P];
    load_pack<T, kVec>(dy + r * d, c, dyv);
    load_pack<T, kVec>(s + r * d, c, sv);
    const float rs = rstd[r];
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if constexpr (kLayer) {
        acc[0][k] += dyv[k] * ((sv[k] - mean[r]) * rs);
        acc[kSums - 1][k] += dyv[k];
      } else {
        acc[0][k] += rms_norm_dgamma_elem(dyv[k], sv[k], rs);
      }
    }
  }
};

template <bool kLayer>
std::vector<Tensor> add_norm_backward_cuda(const Inputs& in, const Attrs&, const char* op) {
  const Tensor &dy = in[0], &ds = in[1], &s = in[2], &gamma = in[3];
  const Tensor mean = kLayer ? in[4] : Tensor();
  const Tensor& rstd = in[kLayer ? 5 : 4];
  const FusedRows r = add_norm_backward_plan(dy, ds, s, gamma, mean, rstd, op);
  const int64_t rows = r.rows, d = r.d;
  Tensor dx = empty(s.shape, s.dtype, s.device());
  Tensor dgamma = empty({d}, s.dtype, s.device());
  Tensor dbeta = kLayer ? empty({d}, s.dtype, s.device()) : Tensor();
  if (d > 0) {
    cudaStream_t stream = cuda::stream(s);
    KX_DISPATCH_FLOAT(s.dtype, {
      using T = scalar_t;
      const T *pdy = dy.data<T>(), *pds = optional_ptr<T>(ds), *ps = s.data<T>(), *pg = optional_ptr<T>(gamma);
      const float *pm = kLayer ? mean.data<float>() : nullptr, *pr = rstd.data<float>();
      T* pdx = dx.data<T>();
      const bool vec = cuda::rows_vectorise<T>(d, pdy, pds, ps, pg, pdx);
      if (rows > 0) {
        launch_rows<T>(rows, d, vec, [&](auto warp, auto v, RowLaunch l) {
          add_norm_backward_kernel<kLayer, decltype(warp)::value, decltype(v)::value, T>
              <<<l.grid, l.threads, 0, stream>>>(pdy, pds, ps, pg, pm, pr, pdx, rows, d);
        });
        cuda::check_launch(op);
      }
      // (with no rows the column pass writes zeros)
      const auto params = [&](auto v) {
        constexpr bool kVec = decltype(v)::value;
        const NormParamGradTerm<kLayer, kVec, T> term{pdy, ps, pm, pr, d};
        column_sums<T, kVec, kLayer ? 2 : 1>(term, rows, d, dgamma, kLayer ? &dbeta : nullptr, stream, op);
      };
      cuda::bool_dispatch(vec, params);
    });
  }
  if (kLayer) return {dx, dgamma, dbeta};
  return {dx, dgamma};
}

std::vector<Tensor> add_layer_norm_cuda(const Inputs& in, const Attrs& attrs) {
  return add_norm_cuda<true>(in, attrs, "add_layer_norm");
}
std::vector<Tensor> add_rms_norm_cuda(const Inputs& in, const Attrs& attrs) {
  return add_norm_cuda<false>(in, attrs, "add_rms_norm");
}
std::vector<Tensor> add_layer_norm_backward_cuda(const Inputs& in, const Attrs& attrs) {
  return add_norm_backward_cuda<true>(in, attrs, "add_layer_norm_backward");
}
std::vector<Tensor> add_rms_norm_backward_cuda(const Inputs& in, const Attrs& attrs) {
  return add_norm_backward_cuda<false>(in, attrs, "add_rms_norm_backward");
}

}  // namespace

KX_REGISTER_KERNEL(bias_gelu, CUDA, bias_gelu_cuda);
KX_REGISTER_KERNEL(bias_gelu_backward, CUDA, bias_gelu_backward_cuda);
KX_REGISTER_KERNEL(add_layer_norm, CUDA, add_layer_norm_cuda);
KX_REGISTER_KERNEL(add_layer_norm_backward, CUDA, add_layer_norm_backward_cuda);
KX_REGISTER_KERNEL(add_rms_norm, CUDA, add_rms_norm_cuda);
KX_REGISTER_KERNEL(add_rms_norm_backward, CUDA, add_rms_norm_backward_cuda);

}  // namespace kx
