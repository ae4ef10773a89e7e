// RMSNorm over the last axis on the CPU (T5LayerNorm: y = x·rsqrt(mean(x²) + eps)·γ): rows in
// parallel, the row math from kx/norm.h, rstd in float32 for every dtype. The backward computes dx
// and dgamma in one pass; dgamma is reduced over rows through per-block partials summed in a fixed
// order (no races, and the same bits whatever the thread count).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/norm_params.h"
#include "cpu/partials.h"
#include "cpu/thread_pool.h"
#include "kx/norm.h"
#include "kx/registry.h"
#include "ops/rms_norm_plan.h"

namespace kx {
namespace {

template <class T>
void rms_norm_forward(const T* x, const float* gamma, T* y, float* rstd, int64_t rows, int64_t d, float eps) {
  cpu::parallel_for(rows, cpu::grain_for(d * 3), [&](int64_t b, int64_t e) {
    std::vector<float> xbuf(std::is_same<T, float>::value ? 0 : (size_t)d);
    std::vector<float> ybuf(xbuf.size());
    for (int64_t r = b; r < e; ++r) {
      const float* xr = load_row(x + r * d, d, xbuf.data());
      float* yr = out_row(y + r * d, ybuf.data());
      rstd[r] = rms_norm_row(xr, gamma, yr, d, eps);
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, rms_norm_forward(x.data<scalar_t>(), g.data(), y.data<scalar_t>(), rstd.data<float>(),
                                              rows, d, (float)eps));
  return {y, rstd};
}

template <class T>
void rms_norm_backward(const T* dy, const T* x, const float* gamma, const float* rstd, T* dx, T* dgamma,
                       int64_t rows, int64_t d) {
  const int64_t blocks = norm_reduction_blocks(rows, d);
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
        rms_norm_row_backward(dyr, xr, gamma, rstd[r], dxr, pg, d);
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
  const std::vector<float> g = cpu::norm_param_row(gamma, d, 1.0f);
  KX_DISPATCH_FLOAT(x.dtype, rms_norm_backward(dy.data<scalar_t>(), x.data<scalar_t>(), g.data(), rstd.data<float>(),
                                               dx.data<scalar_t>(), dgamma.data<scalar_t>(), rows, d));
  return {dx, dgamma};
}

}  // namespace

KX_REGISTER_KERNEL(rms_norm, CPU, rms_norm_cpu);
KX_REGISTER_KERNEL(rms_norm_backward, CPU, rms_norm_backward_cpu);

}  // namespace kx
