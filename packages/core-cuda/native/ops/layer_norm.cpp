// LayerNorm over the last axis on the CPU: rows in parallel, the row math from kx/norm.h, statistics
// in float32 for every dtype. The backward computes dx, dgamma and dbeta in one pass; dgamma/dbeta
// are reduced over rows through per-block partials summed in a fixed order (no races, and the same
// bits whatever the thread count).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/norm_params.h"
#include "cpu/partials.h"
#include "cpu/thread_pool.h"
#include "kx/norm.h"
#include "kx/registry.h"
#include "ops/layer_norm_plan.h"

namespace kx {
namespace {

template <class T>
void layer_norm_forward(const T* x, const float* gamma, const float* beta, T* y, float* mean, float* rstd,
                        int64_t rows, int64_t d, float eps) {
  cpu::parallel_for(rows, cpu::grain_for(d * 4), [&](int64_t b, int64_t e) {
    std::vector<float> xbuf(std::is_same<T, float>::value ? 0 : (size_t)d);
    std::vector<float> ybuf(xbuf.size());
    for (int64_t r = b; r < e; ++r) {
      const float* xr = load_row(x + r * d, d, xbuf.data());
      float* yr = out_row(y + r * d, ybuf.data());
      const RowStats s = layer_norm_row(xr, gamma, beta, yr, d, eps);
      narrow(yr, y + r * d, d);
      mean[r] = s.mean;
      rstd[r] = s.rstd;
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f), bt = cpu::norm_param_row(beta, d, 0.0f);
  KX_DISPATCH_FLOAT(x.dtype, layer_norm_forward(x.data<scalar_t>(), g.data(), bt.data(), y.data<scalar_t>(),
                                                mean.data<float>(), rstd.data<float>(), rows, d, (float)eps));
  return {y, mean, rstd};
}

template <class T>
void layer_norm_backward(const T* dy, const T* x, const float* gamma, const float* mean, const float* rstd, T* dx,
                         T* dgamma, T* dbeta, int64_t rows, int64_t d) {
  const int64_t blocks = norm_reduction_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  // partials[b] = [dgamma row | dbeta row] of block b.
  std::vector<float> partials((size_t)(blocks * 2 * d), 0.0f);
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    const bool f32 = std::is_same<T, float>::value;
    std::vector<float> dybuf(f32 ? 0 : (size_t)d), xbuf(f32 ? 0 : (size_t)d), dxbuf(f32 ? 0 : (size_t)d);
    std::vector<float> xhat((size_t)d);
    for (int64_t blk = b0; blk < b1; ++blk) {
      float* pg = partials.data() + blk * 2 * d;
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        const float* dyr = load_row(dy + r * d, d, dybuf.data());
        const float* xr = load_row(x + r * d, d, xbuf.data());
        float* dxr = out_row(dx + r * d, dxbuf.data());
        layer_norm_row_backward(dyr, xr, gamma, mean[r], rstd[r], dxr, xhat.data(), pg, pg + d, d);
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, layer_norm_backward(dy.data<scalar_t>(), x.data<scalar_t>(), g.data(),
                                                 mean.data<float>(), rstd.data<float>(), dx.data<scalar_t>(),
                                                 dgamma.data<scalar_t>(), dbeta.data<scalar_t>(), rows, d));
  return {dx, dgamma, dbeta};
}

}  // namespace

KX_REGISTER_KERNEL(layer_norm, CPU, layer_norm_cpu);
KX_REGISTER_KERNEL(layer_norm_backward, CPU, layer_norm_backward_cpu);

}  // namespace kx
