// The norm family on CUDA, the twin of norm.cpp: LayerNorm, RMSNorm and the residual norms (y =
// norm(s), s = x + residual stored once), with the validation of ops/norm/plan.h and the element
// math of ops/norm/math.h, statistics in float32 for every dtype. LayerNorm and RMSNorm run
// ops/norm/kernels.cuh's kernels (the kernel lab runs the same), their dgamma/dbeta reduced through
// per-block partials in a fixed order. The residual norms' row kernels use cuda/row_group.cuh: a
// warp or a block owns a row and walks it in 16-byte packs when rows are aligned; each thread
// re-reads only the columns it wrote, so s is read back from cache; their dgamma/dbeta are column
// sums over rows (cuda/column_sums.cuh). Every parameter gradient is deterministic without float
// atomics.
#include <type_traits>

#include "cuda/column_sums.cuh"
#include "cuda/row_group.cuh"
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "ops/norm/kernels.cuh"
#include "ops/norm/math.h"
#include "ops/norm/plan.h"

namespace kx {
namespace {

using cuda::kPackOf;
using cuda::load_pack;
using cuda::RowGroup;
using cuda::RowLaunch;
using cuda::store_pack;

// --- LayerNorm ---------------------------------------------------------------------------------

std::vector<Tensor> layer_norm_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &gamma = in[1], &beta = in[2];
  const NormPlan p = layer_norm_plan(x, gamma, beta, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor mean = empty(p.lead, DType::Float32, x.device());
  Tensor rstd = empty(p.lead, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_layer_norm(
                                 x.data<scalar_t>(), gamma.defined() ? gamma.data<scalar_t>() : nullptr,
                                 beta.defined() ? beta.data<scalar_t>() : nullptr, y.data<scalar_t>(),
                                 mean.data<float>(), rstd.data<float>(), p.rows, p.d, (float)p.eps, cuda::stream(x)));
  cuda::check_launch("layer_norm");
  return {y, mean, rstd};
}

std::vector<Tensor> layer_norm_backward_cuda(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &x = in[1], &gamma = in[2], &mean = in[3], &rstd = in[4];
  const NormPlan p = layer_norm_backward_plan(dy, x, gamma, mean, rstd);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dgamma = empty({p.d}, x.dtype, x.device());
  Tensor dbeta = empty({p.d}, x.dtype, x.device());
  Tensor partials = empty({cuda::norm_partial_blocks(p.rows) * 2 * p.d}, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_layer_norm_backward(
                                 dy.data<scalar_t>(), x.data<scalar_t>(),
                                 gamma.defined() ? gamma.data<scalar_t>() : nullptr, mean.data<float>(),
                                 rstd.data<float>(), dx.data<scalar_t>(), dgamma.data<scalar_t>(),
                                 dbeta.data<scalar_t>(), partials.data<float>(), p.rows, p.d, cuda::stream(x)));
  cuda::check_launch("layer_norm_backward");
  return {dx, dgamma, dbeta};
}

// --- RMSNorm -----------------------------------------------------------------------------------

std::vector<Tensor> rms_norm_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &gamma = in[1];
  const NormPlan p = rms_norm_plan(x, gamma, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor rstd = empty(p.lead, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_rms_norm(x.data<scalar_t>(),
                                                   gamma.defined() ? gamma.data<scalar_t>() : nullptr,
                                                   y.data<scalar_t>(), rstd.data<float>(), p.rows, p.d,
                                                   (float)p.eps, cuda::stream(x)));
  cuda::check_launch("rms_norm");
  return {y, rstd};
}

std::vector<Tensor> rms_norm_backward_cuda(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &x = in[1], &gamma = in[2], &rstd = in[3];
  const NormPlan p = rms_norm_backward_plan(dy, x, gamma, rstd);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dgamma = empty({p.d}, x.dtype, x.device());
  Tensor partials = empty({cuda::norm_partial_blocks(p.rows) * p.d}, DType::Float32, x.device());
  KX_DISPATCH_FLOAT(x.dtype, cuda::launch_rms_norm_backward(
                                 dy.data<scalar_t>(), x.data<scalar_t>(),
                                 gamma.defined() ? gamma.data<scalar_t>() : nullptr, rstd.data<float>(),
                                 dx.data<scalar_t>(), dgamma.data<scalar_t>(), partials.data<float>(), p.rows, p.d,
                                 cuda::stream(x)));
  cuda::check_launch("rms_norm_backward");
  return {dx, dgamma};
}

// --- residual + LayerNorm / RMSNorm ------------------------------------------------------------

template <class T> const T* optional_ptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// Calls launch(warp, vec, RowLaunch) with the row layout for rows of d elements of T, warp and vec as
// std::bool_constant.
template <class T, class Launch>
void launch_rows(int64_t rows, int64_t d, bool vec, Launch&& launch) {
  const RowLaunch l = cuda::row_launch(rows, vec ? d / cuda::Vec16<T>::N : d);
  cuda::bool_dispatch(l.warp, [&](auto warp) { cuda::bool_dispatch(vec, [&](auto v) { launch(warp, v, l); }); });
}

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
        cuda::column_sums<T, kVec, kLayer ? 2 : 1>(term, rows, d, dgamma, kLayer ? &dbeta : nullptr, stream, op);
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

KX_REGISTER_KERNEL(layer_norm, CUDA, layer_norm_cuda);
KX_REGISTER_KERNEL(layer_norm_backward, CUDA, layer_norm_backward_cuda);
KX_REGISTER_KERNEL(rms_norm, CUDA, rms_norm_cuda);
KX_REGISTER_KERNEL(rms_norm_backward, CUDA, rms_norm_backward_cuda);
KX_REGISTER_KERNEL(add_layer_norm, CUDA, add_layer_norm_cuda);
KX_REGISTER_KERNEL(add_layer_norm_backward, CUDA, add_layer_norm_backward_cuda);
KX_REGISTER_KERNEL(add_rms_norm, CUDA, add_rms_norm_cuda);
KX_REGISTER_KERNEL(add_rms_norm_backward, CUDA, add_rms_norm_backward_cuda);

}  // namespace kx
