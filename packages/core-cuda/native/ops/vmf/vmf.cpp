// The von Mises–Fisher ops on the CPU (ALGORITHMS.md §5.2): the inverse-CDF table of w, built once
// in double; draws of w by that table or by Wood's rejection sampler, each draw from its own Philox
// words (ops/vmf/math.h), so the draws do not depend on the threading.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/registry.h"
#include "ops/vmf/math.h"
#include "ops/vmf/plan.h"

namespace kx {
namespace {

// The post's table: y_k = κ x_k + ((d-3)/2) ln(1 - x_k²) on the grid, minus max y, exponentiated,
// summed cumulatively (in double) and divided by the total; stored as float32. Chunks of the grid
// are summed in parallel, then each chunk writes its prefix from the sum of the chunks before it.
std::vector<Tensor> vmf_cdf_cpu(const Inputs&, const Attrs& attrs) {
  const double d = attrs.num("d", 0.0);
  const double kappa = attrs.num("kappa", -1.0);
  vmf_check_d_kappa("vmf_cdf", d, kappa);
  const VmfGrid g = vmf_grid(attrs, "vmf_cdf");
  const double half = 0.5 * (d - 3.0);
  auto y = [&](int64_t k) {
    const double x = vmf_grid_point(k, g.delta);
    // 1 - x² = (1 - x)(1 + x): exact near both ends of the grid
    return kappa * x + (half == 0.0 ? 0.0 : half * std::log((1.0 - x) * (1.0 + x)));
  };
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (g.n + kChunk - 1) / kChunk;
  std::vector<double> top(chunks), sums(chunks);
  cpu::parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double m = -INFINITY;
      for (int64_t k = c * kChunk, end = std::min(g.n, k + kChunk); k < end; ++k) m = std::max(m, y(k));
      top[c] = m;
    }
  });
  const double ymax = *std::max_element(top.begin(), top.end());
  cpu::parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0.0;
      for (int64_t k = c * kChunk, end = std::min(g.n, k + kChunk); k < end; ++k) s += std::exp(y(k) - ymax);
      sums[c] = s;
    }
  });
  std::vector<double> before(chunks, 0.0);
  for (int64_t c = 1; c < chunks; ++c) before[c] = before[c - 1] + sums[c - 1];
  const double total = before[chunks - 1] + sums[chunks - 1];
  Tensor cdf = empty({g.n}, DType::Float32, Device{});
  float* out = cdf.data<float>();
  cpu::parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = before[c];
      for (int64_t k = c * kChunk, end = std::min(g.n, k + kChunk); k < end; ++k) {
        s += std::exp(y(k) - ymax);
        out[k] = (float)(s / total);
      }
    }
  });
  out[g.n - 1] = 1.0f;
  return {cdf};
}

// Draw i is random element e = offset + i: word e % 4 of Philox block e / 4 (kx/philox.h).
std::vector<Tensor> vmf_sample_icdf_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& cdf = in[0];
  const VmfIcdfPlan p = vmf_icdf_plan(cdf, attrs);
  Tensor w = empty({p.count}, DType::Float32, cdf.device());
  const float* table = cdf.data<float>();
  float* out = w.data<float>();
  cpu::parallel_for(p.count, 1 << 12, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const uint64_t r = p.offset + (uint64_t)i;
      const float u = philox_uniform_at(p.seed, r);
      out[i] = (float)vmf_icdf_lookup(table, p.n, p.delta, u);
    }
  });
  return {w};
}

std::vector<Tensor> vmf_sample_wood_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& like = in[0];
  const VmfWoodParams p = vmf_wood_plan(like, attrs);
  Tensor w = empty(like.shape, DType::Float32, like.device());
  float* out = w.data<float>();
  cpu::parallel_for(like.numel(), 1 << 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = (float)vmf_wood_draw(p, p.offset + (uint64_t)i);
  });
  return {w};
}

// One row at a time (the row's three passes are cheap beside the op's dispatch for small d).
std::vector<Tensor> vmf_compose_cpu(const Inputs& in, const Attrs&) {
  const VmfComposePlan p = vmf_compose_plan(in, "vmf_compose");
  Tensor z = empty(in[0].shape, in[0].dtype, in[0].device());
  KX_DISPATCH_FLOAT(z.dtype, {
    const scalar_t* mu = in[0].data<scalar_t>();
    const scalar_t* w = in[1].data<scalar_t>();
    const scalar_t* eps = in[2].data<scalar_t>();
    scalar_t* out = z.data<scalar_t>();
    cpu::parallel_for(p.rows, cpu::grain_for(4 * p.d + 8), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) vmf_compose_row(mu + r * p.d, w[r], eps + r * p.d, out + r * p.d, p.d);
    });
  });
  return {z};
}

std::vector<Tensor> vmf_compose_backward_cpu(const Inputs& in, const Attrs&) {
  const VmfComposePlan p = vmf_compose_plan(in, "vmf_compose_backward");
  Tensor dmu = empty(in[0].shape, in[0].dtype, in[0].device());
  Tensor dw = empty(in[1].shape, in[1].dtype, in[1].device());
  Tensor deps = empty(in[2].shape, in[2].dtype, in[2].device());
  KX_DISPATCH_FLOAT(dmu.dtype, {
    const scalar_t* mu = in[0].data<scalar_t>();
    const scalar_t* w = in[1].data<scalar_t>();
    const scalar_t* eps = in[2].data<scalar_t>();
    const scalar_t* g = in[3].data<scalar_t>();
    scalar_t* gmu = dmu.data<scalar_t>();
    scalar_t* gw = dw.data<scalar_t>();
    scalar_t* geps = deps.data<scalar_t>();
    cpu::parallel_for(p.rows, cpu::grain_for(8 * p.d + 8), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t o = r * p.d;
        vmf_compose_backward_row(mu + o, w[r], eps + o, g + o, gmu + o, gw + r, geps + o, p.d);
      }
    });
  });
  return {dmu, dw, deps};
}

}  // namespace

KX_REGISTER_KERNEL(vmf_compose, CPU, vmf_compose_cpu);
KX_REGISTER_KERNEL(vmf_compose_backward, CPU, vmf_compose_backward_cpu);
KX_REGISTER_KERNEL(vmf_cdf, CPU, vmf_cdf_cpu);
KX_REGISTER_KERNEL(vmf_sample_icdf, CPU, vmf_sample_icdf_cpu);
KX_REGISTER_KERNEL(vmf_sample_wood, CPU, vmf_sample_wood_cpu);

}  // namespace kx
