// The norm family on the CPU: LayerNorm, RMSNorm (T5LayerNorm: y = x·rsqrt(mean(x²) + eps)·γ) and
// the residual norms of the fused tier (y = norm(s) with s = x + residual), over the last axis,
// rows in parallel, each row one call of kx/simd.h's row runs (ops/norm/math.h's formulas),
// statistics in float32 for every dtype. The residual norms normalise the stored sum s as
// layer_norm(add(x, r)) does, so they give the bits of the unfused ops on the same values. Backward
// passes compute dx and the parameter gradients in one pass; dgamma and dbeta are reduced over rows
// through per-block partials summed in a fixed order (no races, and the same bits whatever the
// thread count).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/partials.h"
#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/norm/plan.h"

namespace kx {
namespace {

// A norm parameter (shape [d], any floating dtype) as a float32 row; `fill` everywhere when absent.
std::vector<float> norm_param_row(const Tensor& p, int64_t d, float fill) {
  std::vector<float> out((size_t)d, fill);
  if (p.defined()) KX_DISPATCH_FLOAT(p.dtype, widen(p.data<scalar_t>(), out.data(), d));
  return out;
}

// --- LayerNorm ---------------------------------------------------------------------------------

template <class T>
void layer_norm_forward(const T* x, const float* gamma, const float* beta, T* y, float* mean, float* rstd,
                        int64_t rows, int64_t d, float eps) {
  cpu::parallel_for(rows, cpu::grain_for(d * 4), [&](int64_t b, int64_t e) {
    std::vector<float> xbuf(std::is_same<T, float>::value ? 0 : (size_t)d);
    std::vector<float> ybuf(xbuf.size());
    for (int64_t r = b; r < e; ++r) {
      const float* xr = load_row(x + r * d, d, xbuf.data());
      float* yr = out_row(y + r * d, ybuf.data());
      simd::layer_norm_row(xr, gamma, beta, yr, d, eps, &mean[r], &rstd[r]);
      narrow(yr, y + r * d, d);
    }
  });
}

std::vector<Tensor> layer_norm_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &gamma = in[1], &beta = in[2];
  const NormPlan p = layer_norm_plan(x, gamma, beta, attrs);
  const Shape& lead = p.lead;
  const int64_t d = p.d, rows = p.rows;
  const double eps = p.eps;
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor mean = empty(lead, DType::Float32, x.device());
  Tensor rstd = empty(lead, DType::Float32, x.device());
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f), bt = norm_param_row(beta, d, 0.0f);
  KX_DISPATCH_FLOAT(x.dtype, layer_norm_forward(x.data<scalar_t>(), g.data(), bt.data(), y.data<scalar_t>(),
                                                mean.data<float>(), rstd.data<float>(), rows, d, (float)eps));
  return {y, mean, rstd};
}

template <class T>
void layer_norm_backward(const T* dy, const T* x, const float* gamma, const float* mean, const float* rstd, T* dx,
                         T* dgamma, T* dbeta, int64_t rows, int64_t d) {
  const int64_t blocks = cpu::partial_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  // partials[b] = [dgamma row | dbeta row] of block b.
  std::vector<float> partials((size_t)(blocks * 2 * d), 0.0f);
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    const bool f32 = std::is_same<T, float>::value;
    std::vector<float> dybuf(f32 ? 0 : (size_t)d), xbuf(f32 ? 0 : (size_t)d), dxbuf(f32 ? 0 : (size_t)d);
    for (int64_t blk = b0; blk < b1; ++blk) {
      float* pg = partials.data() + blk * 2 * d;
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        const float* dyr = load_row(dy + r * d, d, dybuf.data());
        const float* xr = load_row(x + r * d, d, xbuf.data());
        float* dxr = out_row(dx + r * d, dxbuf.data());
        simd::layer_norm_row_backward(dyr, xr, gamma, mean[r], rstd[r], dxr, pg, pg + d, d);
        narrow(dxr, dx + r * d, d);
      }
    }
  });
  cpu::sum_block_partials(partials.data(), blocks, 2 * d, d, dgamma);
  cpu::sum_block_partials(partials.data() + d, blocks, 2 * d, d, dbeta);
}

std::vector<Tensor> layer_norm_backward_cpu(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &x = in[1], &gamma = in[2], &mean = in[3], &rstd = in[4];
  const NormPlan p = layer_norm_backward_plan(dy, x, gamma, mean, rstd);
  const int64_t d = p.d, rows = p.rows;
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dgamma = empty({d}, x.dtype, x.device());
  Tensor dbeta = empty({d}, x.dtype, x.device());
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, layer_norm_backward(dy.data<scalar_t>(), x.data<scalar_t>(), g.data(),
                                                 mean.data<float>(), rstd.data<float>(), dx.data<scalar_t>(),
                                                 dgamma.data<scalar_t>(), dbeta.data<scalar_t>(), rows, d));
  return {dx, dgamma, dbeta};
}

// --- RMSNorm -----------------------------------------------------------------------------------

template <class T>
void rms_norm_forward(const T* x, const float* gamma, T* y, float* rstd, int64_t rows, int64_t d, float eps) {
  cpu::parallel_for(rows, cpu::grain_for(d * 3), [&](int64_t b, int64_t e) {
    std::vector<float> xbuf(std::is_same<T, float>::value ? 0 : (size_t)d);
    std::vector<float> ybuf(xbuf.size());
    for (int64_t r = b; r < e; ++r) {
      const float* xr = load_row(x + r * d, d, xbuf.data());
      float* yr = out_row(y + r * d, ybuf.data());
      rstd[r] = simd::rms_norm_row(xr, gamma, yr, d, eps);
      narrow(yr, y + r * d, d);
    }
  });
}

std::vector<Tensor> rms_norm_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &gamma = in[1];
  const NormPlan p = rms_norm_plan(x, gamma, attrs);
  const Shape& lead = p.lead;
  const int64_t d = p.d, rows = p.rows;
  const double eps = p.eps;
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor rstd = empty(lead, DType::Float32, x.device());
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, rms_norm_forward(x.data<scalar_t>(), g.data(), y.data<scalar_t>(), rstd.data<float>(),
                                              rows, d, (float)eps));
  return {y, rstd};
}

template <class T>
void rms_norm_backward(const T* dy, const T* x, const float* gamma, const float* rstd, T* dx, T* dgamma,
                       int64_t rows, int64_t d) {
  const int64_t blocks = cpu::partial_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  std::vector<float> partials((size_t)(blocks * d), 0.0f);  // partials[b] = dgamma row of block b
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    const bool f32 = std::is_same<T, float>::value;
    std::vector<float> dybuf(f32 ? 0 : (size_t)d), xbuf(f32 ? 0 : (size_t)d), dxbuf(f32 ? 0 : (size_t)d);
    for (int64_t blk = b0; blk < b1; ++blk) {
      float* pg = partials.data() + blk * d;
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        const float* dyr = load_row(dy + r * d, d, dybuf.data());
        const float* xr = load_row(x + r * d, d, xbuf.data());
        float* dxr = out_row(dx + r * d, dxbuf.data());
        simd::rms_norm_row_backward(dyr, xr, gamma, rstd[r], dxr, pg, d);
        narrow(dxr, dx + r * d, d);
      }
    }
  });
  cpu::sum_block_partials(partials.data(), blocks, d, d, dgamma);
}

std::vector<Tensor> rms_norm_backward_cpu(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &x = in[1], &gamma = in[2], &rstd = in[3];
  const NormPlan p = rms_norm_backward_plan(dy, x, gamma, rstd);
  const int64_t d = p.d, rows = p.rows;
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dgamma = empty({d}, x.dtype, x.device());
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, rms_norm_backward(dy.data<scalar_t>(), x.data<scalar_t>(), g.data(), rstd.data<float>(),
                                               dx.data<scalar_t>(), dgamma.data<scalar_t>(), rows, d));
  return {dx, dgamma};
}

// --- residual + LayerNorm / RMSNorm ------------------------------------------------------------

// Float32 scratch rows of one task; float32 tensors need none (they are read and written in place).
template <class T>
struct RowBuffers {
  static constexpr bool kF32 = std::is_same_v<T, float>;
  std::vector<float> a, b, out;
  explicit RowBuffers(int64_t d) : a(kF32 ? 0 : (size_t)d), b(a.size()), out(a.size()) {}
};

// s = x + r for one row, stored to `s` in its dtype; returns the stored values as float32 (the
// rounded sum, which is what the norm sees and what the backward will read back).
template <class T>
const float* add_row(const T* x, const T* r, T* s, int64_t d, RowBuffers<T>& buf) {
  const float* xr = load_row(x, d, buf.a.data());
  const float* rr = load_row(r, d, buf.b.data());
  float* sr = out_row(s, buf.a.data());  // (a half x row is dead once read: its buffer takes the sum)
  simd::binary(simd::BinaryOp::Add, xr, 1, rr, 1, sr, d);
  narrow(sr, s, d);
  widen(s, sr, d);
  return sr;
}

template <class T>
void add_layer_norm_forward(const T* x, const T* res, const float* gamma, const float* beta, T* y, T* s,
                            float* mean, float* rstd, int64_t rows, int64_t d, float eps) {
  cpu::parallel_for(rows, cpu::grain_for(d * 6), [&](int64_t b, int64_t e) {
    RowBuffers<T> buf(d);
    for (int64_t r = b; r < e; ++r) {
      const float* sr = add_row(x + r * d, res + r * d, s + r * d, d, buf);
      float* yr = out_row(y + r * d, buf.out.data());
      simd::layer_norm_row(sr, gamma, beta, yr, d, eps, &mean[r], &rstd[r]);
      narrow(yr, y + r * d, d);
    }
  });
}

std::vector<Tensor> add_layer_norm_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &res = in[1], &gamma = in[2], &beta = in[3];
  const AddNormPlan p = add_norm_plan(x, res, gamma, beta, attrs, 1e-5, "add_layer_norm");
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor s = empty(x.shape, x.dtype, x.device());
  Tensor mean = empty(p.rows.lead, DType::Float32, x.device());
  Tensor rstd = empty(p.rows.lead, DType::Float32, x.device());
  const int64_t d = p.rows.d;
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f), bt = norm_param_row(beta, d, 0.0f);
  KX_DISPATCH_FLOAT(x.dtype, add_layer_norm_forward(x.data<scalar_t>(), res.data<scalar_t>(), g.data(), bt.data(),
                                                    y.data<scalar_t>(), s.data<scalar_t>(), mean.data<float>(),
                                                    rstd.data<float>(), p.rows.rows, d, p.eps));
  return {y, s, mean, rstd};
}

template <class T>
void add_rms_norm_forward(const T* x, const T* res, const float* gamma, T* y, T* s, float* rstd, int64_t rows,
                          int64_t d, float eps) {
  cpu::parallel_for(rows, cpu::grain_for(d * 5), [&](int64_t b, int64_t e) {
    RowBuffers<T> buf(d);
    for (int64_t r = b; r < e; ++r) {
      const float* sr = add_row(x + r * d, res + r * d, s + r * d, d, buf);
      float* yr = out_row(y + r * d, buf.out.data());
      rstd[r] = simd::rms_norm_row(sr, gamma, yr, d, eps);
      narrow(yr, y + r * d, d);
    }
  });
}

std::vector<Tensor> add_rms_norm_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &res = in[1], &gamma = in[2];
  const AddNormPlan p = add_norm_plan(x, res, gamma, Tensor(), attrs, 1e-6, "add_rms_norm");
  Tensor y = empty(x.shape, x.dtype, x.device());
  Tensor s = empty(x.shape, x.dtype, x.device());
  Tensor rstd = empty(p.rows.lead, DType::Float32, x.device());
  const std::vector<float> g = norm_param_row(gamma, p.rows.d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, add_rms_norm_forward(x.data<scalar_t>(), res.data<scalar_t>(), g.data(),
                                                  y.data<scalar_t>(), s.data<scalar_t>(), rstd.data<float>(),
                                                  p.rows.rows, p.rows.d, p.eps));
  return {y, s, rstd};
}

// The backward of both norms over row blocks: row(r, dy, s, dx, partial) computes one row's dx
// (float32) and adds its parameter gradients into the block's partial (`width` floats); ds, when
// given, is added to dx before it is stored (dx is also the residual's gradient). Returns the
// number of blocks.
template <class T, class RowFn>
int64_t add_norm_backward(const T* dy, const T* ds, const T* s, T* dx, int64_t rows, int64_t d, int64_t width,
                          std::vector<float>& partials, RowFn row) {
  const int64_t blocks = cpu::partial_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  partials.assign((size_t)(blocks * width), 0.0f);
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    RowBuffers<T> buf(d);
    std::vector<float> dsbuf(buf.a.size());
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        const float* dyr = load_row(dy + r * d, d, buf.a.data());
        const float* sr = load_row(s + r * d, d, buf.b.data());
        float* dxr = out_row(dx + r * d, buf.out.data());
        row(r, dyr, sr, dxr, partials.data() + blk * width);
        if (ds) simd::binary(simd::BinaryOp::Add, dxr, 1, load_row(ds + r * d, d, dsbuf.data()), 1, dxr, d);
        narrow(dxr, dx + r * d, d);
      }
    }
  });
  return blocks;
}

template <class T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

std::vector<Tensor> add_layer_norm_backward_cpu(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &ds = in[1], &s = in[2], &gamma = in[3], &mean = in[4], &rstd = in[5];
  const FusedRows r = add_norm_backward_plan(dy, ds, s, gamma, mean, rstd, "add_layer_norm_backward");
  const int64_t d = r.d;
  Tensor dx = empty(s.shape, s.dtype, s.device());
  Tensor dgamma = empty({d}, s.dtype, s.device());
  Tensor dbeta = empty({d}, s.dtype, s.device());
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f);
  const float *mp = mean.data<float>(), *rp = rstd.data<float>();
  std::vector<float> partials;  // partials[b] = [dgamma row | dbeta row] of block b
  KX_DISPATCH_FLOAT(s.dtype, {
    const int64_t blocks = add_norm_backward(
        dy.data<scalar_t>(), optional_data<scalar_t>(ds), s.data<scalar_t>(), dx.data<scalar_t>(), r.rows, d, 2 * d,
        partials, [&](int64_t row, const float* dyr, const float* sr, float* dxr, float* pg) {
          simd::layer_norm_row_backward(dyr, sr, g.data(), mp[row], rp[row], dxr, pg, pg + d, d);
        });
    cpu::sum_block_partials(partials.data(), blocks, 2 * d, d, dgamma.data<scalar_t>());
    cpu::sum_block_partials(partials.data() + d, blocks, 2 * d, d, dbeta.data<scalar_t>());
  });
  return {dx, dgamma, dbeta};
}

std::vector<Tensor> add_rms_norm_backward_cpu(const Inputs& in, const Attrs&) {
  const Tensor &dy = in[0], &ds = in[1], &s = in[2], &gamma = in[3], &rstd = in[4];
  const FusedRows r = add_norm_backward_plan(dy, ds, s, gamma, Tensor(), rstd, "add_rms_norm_backward");
  const int64_t d = r.d;
  Tensor dx = empty(s.shape, s.dtype, s.device());
  Tensor dgamma = empty({d}, s.dtype, s.device());
  const std::vector<float> g = norm_param_row(gamma, d, 1.0f);
  const float* rp = rstd.data<float>();
  std::vector<float> partials;  // partials[b] = dgamma row of block b
  KX_DISPATCH_FLOAT(s.dtype, {
    const int64_t blocks = add_norm_backward(
        dy.data<scalar_t>(), optional_data<scalar_t>(ds), s.data<scalar_t>(), dx.data<scalar_t>(), r.rows, d, d,
        partials, [&](int64_t row, const float* dyr, const float* sr, float* dxr, float* pg) {
          simd::rms_norm_row_backward(dyr, sr, g.data(), rp[row], dxr, pg, d);
        });
    cpu::sum_block_partials(partials.data(), blocks, d, d, dgamma.data<scalar_t>());
  });
  return {dx, dgamma};
}

}  // namespace

KX_REGISTER_KERNEL(layer_norm, CPU, layer_norm_cpu);
KX_REGISTER_KERNEL(layer_norm_backward, CPU, layer_norm_backward_cpu);
KX_REGISTER_KERNEL(rms_norm, CPU, rms_norm_cpu);
KX_REGISTER_KERNEL(rms_norm_backward, CPU, rms_norm_backward_cpu);
KX_REGISTER_KERNEL(add_layer_norm, CPU, add_layer_norm_cpu);
KX_REGISTER_KERNEL(add_layer_norm_backward, CPU, add_layer_norm_backward_cpu);
KX_REGISTER_KERNEL(add_rms_norm, CPU, add_rms_norm_cpu);
KX_REGISTER_KERNEL(add_rms_norm_backward, CPU, add_rms_norm_backward_cpu);

}  // namespace kx
