// The fused tier on the CPU: bias+GELU, residual+LayerNorm and residual+RMSNorm, forward and
// backward, each one pass per row with rows in parallel. The element math is kx/fused.h's and the
// norm row math kx/norm.h's, so these give the bits of the unfused ops on the same values: the
// norms normalise the stored sum s = x + residual as layer_norm(add(x, r)) does, and bias+GELU
// differs from gelu(add(x, b)) only in halves, where it does not round x + b before the GELU.
// Parameter gradients (dbias, dgamma, dbeta) are reduced over rows through per-block partials
// summed in a fixed order: no races, and the same bits whatever the thread count.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cpu/norm_params.h"
#include "cpu/partials.h"
#include "cpu/thread_pool.h"
#include "kx/fused.h"
#include "kx/norm.h"
#include "ops/fused_plan.h"

namespace kx {
namespace {

// --- bias + GELU -------------------------------------------------------------------------------

// A row is walked in blocks of a fixed kBlock elements (a multiple of every vector width), as the
// unary ops do: every element takes the same vector instructions wherever it sits, so the result
// does not depend on the element's position (a scalar remainder loop could contract a*b+c into an
// FMA differently). The last partial block of a row goes through zero-padded buffers; the bias row
// is float32 and zero-padded to whole blocks.
constexpr int64_t kBlock = 64;

int64_t padded_to_blocks(int64_t d) { return (d + kBlock - 1) / kBlock * kBlock; }

std::vector<float> padded_bias_row(const Tensor& bias, int64_t d) {
  std::vector<float> row((size_t)padded_to_blocks(d), 0.0f);
  KX_DISPATCH_FLOAT(bias.dtype, widen(bias.data<scalar_t>(), row.data(), d));
  return row;
}

// n elements (n <= kBlock) of src as float32 in buf, zero-padded to kBlock.
template <class T>
void widen_block(const T* src, int64_t n, float* buf) {
  widen(src, buf, n);
  for (int64_t i = n; i < kBlock; ++i) buf[i] = 0.0f;
}

template <bool kTanh>
inline void bias_gelu_block(const float* __restrict x, const float* __restrict bias, float* __restrict y) {
  if constexpr (kTanh) {
    for (int64_t i = 0; i < kBlock; ++i) y[i] = bias_gelu<kTanh>(x[i], bias[i]);
  } else {
    // the loop of the unfused GELU, so that float32 gives gelu(add(x, b))'s bits
    for (int64_t i = 0; i < kBlock; ++i) y[i] = x[i] + bias[i];
    gelu_erf_run(y, y, kBlock);
  }
}

// dx for one block, also added into the block's dbias partial.
template <bool kTanh>
inline void bias_gelu_backward_block(const float* __restrict dy, const float* __restrict x,
                                     const float* __restrict bias, float* __restrict dx, float* __restrict dbias) {
  for (int64_t i = 0; i < kBlock; ++i) {
    const float g = bias_gelu_grad<kTanh>(dy[i], x[i], bias[i]);
    dx[i] = g;
    dbias[i] += g;
  }
}

template <bool kTanh, class T>
void bias_gelu_forward(const T* x, const float* bias, T* y, int64_t rows, int64_t d) {
  cpu::parallel_for(rows, cpu::grain_for(d * 16), [&](int64_t r0, int64_t r1) {
    float xb[kBlock], yb[kBlock];
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * d;
      T* yr = y + r * d;
      for (int64_t c = 0; c < d; c += kBlock) {
        const int64_t m = std::min(kBlock, d - c);
        if constexpr (std::is_same_v<T, float>) {
          if (m == kBlock) {
            bias_gelu_block<kTanh>(xr + c, bias + c, yr + c);
            continue;
          }
        }
        widen_block(xr + c, m, xb);
        bias_gelu_block<kTanh>(xb, bias + c, yb);
        narrow(yb, yr + c, m);
      }
    }
  });
}

std::vector<Tensor> bias_gelu_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &bias = in[1];
  const BiasGeluPlan p = bias_gelu_plan(nullptr, x, bias, attrs, "bias_gelu");
  Tensor y = empty(x.shape, x.dtype, x.device());
  const std::vector<float> b = padded_bias_row(bias, p.rows.d);
  KX_DISPATCH_FLOAT(x.dtype, {
    if (p.tanh) bias_gelu_forward<true>(x.data<scalar_t>(), b.data(), y.data<scalar_t>(), p.rows.rows, p.rows.d);
    else bias_gelu_forward<false>(x.data<scalar_t>(), b.data(), y.data<scalar_t>(), p.rows.rows, p.rows.d);
  });
  return {y};
}

template <bool kTanh, class T>
void bias_gelu_backward(const T* dy, const T* x, const float* bias, T* dx, T* dbias, int64_t rows, int64_t d) {
  const int64_t padded = padded_to_blocks(d);
  const int64_t blocks = norm_reduction_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  std::vector<float> partials((size_t)(blocks * padded), 0.0f);  // partials[b] = dbias row of block b
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    float dyb[kBlock], xb[kBlock], dxb[kBlock];
    for (int64_t blk = b0; blk < b1; ++blk) {
      float* pb = partials.data() + blk * padded;
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        for (int64_t c = 0; c < d; c += kBlock) {
          const int64_t at = r * d + c, m = std::min(kBlock, d - c);
          if constexpr (std::is_same_v<T, float>) {
            if (m == kBlock) {
              bias_gelu_backward_block<kTanh>(dy + at, x + at, bias + c, dx + at, pb + c);
              continue;
            }
          }
          widen_block(dy + at, m, dyb);  // padding: dy = 0 adds nothing to dbias
          widen_block(x + at, m, xb);
          bias_gelu_backward_block<kTanh>(dyb, xb, bias + c, dxb, pb + c);
          narrow(dxb, dx + at, m);
        }
      }
    }
  });
  cpu::sum_block_partials(partials.data(), blocks, padded, d, dbias);
}

std::vector<Tensor> bias_gelu_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &dy = in[0], &x = in[1], &bias = in[2];
  const BiasGeluPlan p = bias_gelu_plan(&dy, x, bias, attrs, "bias_gelu_backward");
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dbias = empty({p.rows.d}, x.dtype, x.device());
  const std::vector<float> b = padded_bias_row(bias, p.rows.d);
  KX_DISPATCH_FLOAT(x.dtype, {
    const scalar_t *dyp = dy.data<scalar_t>(), *xp = x.data<scalar_t>();
    scalar_t *dxp = dx.data<scalar_t>(), *dbp = dbias.data<scalar_t>();
    if (p.tanh) bias_gelu_backward<true>(dyp, xp, b.data(), dxp, dbp, p.rows.rows, p.rows.d);
    else bias_gelu_backward<false>(dyp, xp, b.data(), dxp, dbp, p.rows.rows, p.rows.d);
  });
  return {dx, dbias};
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
  for (int64_t i = 0; i < d; ++i) sr[i] = xr[i] + rr[i];
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
      const RowStats st = layer_norm_row(sr, gamma, beta, yr, d, eps);
      narrow(yr, y + r * d, d);
      mean[r] = st.mean;
      rstd[r] = st.rstd;
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f), bt = cpu::norm_param_row(beta, d, 0.0f);
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
      rstd[r] = rms_norm_row(sr, gamma, yr, d, eps);
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
  const std::vector<float> g = cpu::norm_param_row(gamma, p.rows.d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, add_rms_norm_forward(x.data<scalar_t>(), res.data<scalar_t>(), g.data(),
                                                  y.data<scalar_t>(), s.data<scalar_t>(), rstd.data<float>(),
                                                  p.rows.rows, p.rows.d, p.eps));
  return {y, s, rstd};
}

// The backward of both norms over row blocks: row(r, dy, s, dx, partial, scratch) computes one
// row's dx (float32) and adds its parameter gradients into the block's partial (`width` floats;
// scratch holds d floats); ds, when given, is added to dx before it is stored (dx is also the
// residual's gradient). Returns the number of blocks.
template <class T, class RowFn>
int64_t add_norm_backward(const T* dy, const T* ds, const T* s, T* dx, int64_t rows, int64_t d, int64_t width,
                          std::vector<float>& partials, RowFn row) {
  const int64_t blocks = norm_reduction_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  partials.assign((size_t)(blocks * width), 0.0f);
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    RowBuffers<T> buf(d);
    std::vector<float> dsbuf(buf.a.size()), scratch((size_t)d);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        const float* dyr = load_row(dy + r * d, d, buf.a.data());
        const float* sr = load_row(s + r * d, d, buf.b.data());
        float* dxr = out_row(dx + r * d, buf.out.data());
        row(r, dyr, sr, dxr, partials.data() + blk * width, scratch.data());
        if (ds) {
          const float* dsr = load_row(ds + r * d, d, dsbuf.data());
          for (int64_t i = 0; i < d; ++i) dxr[i] += dsr[i];
        }
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f);
  const float *mp = mean.data<float>(), *rp = rstd.data<float>();
  std::vector<float> partials;  // partials[b] = [dgamma row | dbeta row] of block b
  KX_DISPATCH_FLOAT(s.dtype, {
    const int64_t blocks = add_norm_backward(
        dy.data<scalar_t>(), optional_data<scalar_t>(ds), s.data<scalar_t>(), dx.data<scalar_t>(), r.rows, d, 2 * d,
        partials, [&](int64_t row, const float* dyr, const float* sr, float* dxr, float* pg, float* xhat) {
          layer_norm_row_backward(dyr, sr, g.data(), mp[row], rp[row], dxr, xhat, pg, pg + d, d);
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f);
  const float* rp = rstd.data<float>();
  std::vector<float> partials;  // partials[b] = dgamma row of block b
  KX_DISPATCH_FLOAT(s.dtype, {
    const int64_t blocks = add_norm_backward(
        dy.data<scalar_t>(), optional_data<scalar_t>(ds), s.data<scalar_t>(), dx.data<scalar_t>(), r.rows, d, d,
        partials, [&](int64_t row, const float* dyr, const float* sr, float* dxr, float* pg, float*) {
          rms_norm_row_backward(dyr, sr, g.data(), rp[row], dxr, pg, d);
        });
    cpu::sum_block_partials(partials.data(), blocks, d, d, dgamma.data<scalar_t>());
  });
  return {dx, dgamma};
}

}  // namespace

KX_REGISTER_KERNEL(bias_gelu, CPU, bias_gelu_cpu);
KX_REGISTER_KERNEL(bias_gelu_backward, CPU, bias_gelu_backward_cpu);
KX_REGISTER_KERNEL(add_layer_norm, CPU, add_layer_norm_cpu);
KX_REGISTER_KERNEL(add_layer_norm_backward, CPU, add_layer_norm_backward_cpu);
KX_REGISTER_KERNEL(add_rms_norm, CPU, add_rms_norm_cpu);
KX_REGISTER_KERNEL(add_rms_norm_backward, CPU, add_rms_norm_backward_cpu);

}  // namespace kx
