// The von Mises–Fisher samplers on CUDA: one thread a draw, with the CPU's math (ops/vmf/math.h)
// and Philox words, so a seed draws the same w on both devices. The table itself is built on the
// CPU (vmf_cdf has no CUDA kernel: a cumulative sum in double, done once) and copied here.
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "ops/vmf/math.h"
#include "ops/vmf/plan.h"

namespace kx {
namespace {

__global__ void vmf_icdf_kernel(const float* __restrict__ cdf, float* __restrict__ w, VmfIcdfPlan p) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < p.count; i += stride) {
    const uint64_t r = p.offset + (uint64_t)i;
    const float u = philox_uniform_at(p.seed, r);
    w[i] = (float)vmf_icdf_lookup(cdf, p.n, p.delta, u);
  }
}

__global__ void vmf_wood_kernel(float* __restrict__ w, int64_t n, VmfWoodParams p) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < n; i += stride) w[i] = (float)vmf_wood_draw(p, p.offset + (uint64_t)i);
}

// One thread a row: the rows of a VAE's latent are short (d = 4 … a few hundred).
template <class T>
__global__ void vmf_compose_kernel(const T* __restrict__ mu, const T* __restrict__ w, const T* __restrict__ eps,
                                   T* __restrict__ z, int64_t rows, int64_t d) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t r = cuda::thread_index(); r < rows; r += stride) vmf_compose_row(mu + r * d, w[r], eps + r * d, z + r * d, d);
}

template <class T>
__global__ void vmf_compose_backward_kernel(const T* __restrict__ mu, const T* __restrict__ w, const T* __restrict__ eps,
                                            const T* __restrict__ g, T* __restrict__ dmu, T* __restrict__ dw,
                                            T* __restrict__ deps, int64_t rows, int64_t d) {
  const int64_t stride = cuda::grid_stride();
  for (int64_t r = cuda::thread_index(); r < rows; r += stride)
    vmf_compose_backward_row(mu + r * d, w[r], eps + r * d, g + r * d, dmu + r * d, dw + r, deps + r * d, d);
}

std::vector<Tensor> vmf_compose_cuda(const Inputs& in, const Attrs&) {
  const VmfComposePlan p = vmf_compose_plan(in, "vmf_compose");
  Tensor z = empty(in[0].shape, in[0].dtype, in[0].device());
  if (p.rows == 0 || p.d == 0) return {z};
  KX_DISPATCH_FLOAT(z.dtype, {
    vmf_compose_kernel<<<cuda::blocks_for(p.rows, cuda::kThreads), cuda::kThreads, 0, cuda::stream(z)>>>(
        in[0].data<scalar_t>(), in[1].data<scalar_t>(), in[2].data<scalar_t>(), z.data<scalar_t>(), p.rows, p.d);
  });
  cuda::check_launch("vmf_compose");
  return {z};
}

std::vector<Tensor> vmf_compose_backward_cuda(const Inputs& in, const Attrs&) {
  const VmfComposePlan p = vmf_compose_plan(in, "vmf_compose_backward");
  Tensor dmu = empty(in[0].shape, in[0].dtype, in[0].device());
  Tensor dw = empty(in[1].shape, in[1].dtype, in[1].device());
  Tensor deps = empty(in[2].shape, in[2].dtype, in[2].device());
  if (p.rows == 0) return {dmu, dw, deps};
  KX_DISPATCH_FLOAT(dmu.dtype, {
    vmf_compose_backward_kernel<<<cuda::blocks_for(p.rows, cuda::kThreads), cuda::kThreads, 0, cuda::stream(dmu)>>>(
        in[0].data<scalar_t>(), in[1].data<scalar_t>(), in[2].data<scalar_t>(), in[3].data<scalar_t>(),
        dmu.data<scalar_t>(), dw.data<scalar_t>(), deps.data<scalar_t>(), p.rows, p.d);
  });
  cuda::check_launch("vmf_compose_backward");
  return {dmu, dw, deps};
}

std::vector<Tensor> vmf_sample_icdf_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& cdf = in[0];
  const VmfIcdfPlan p = vmf_icdf_plan(cdf, attrs);
  Tensor w = empty({p.count}, DType::Float32, cdf.device());
  if (p.count == 0) return {w};
  vmf_icdf_kernel<<<cuda::blocks_for(p.count, cuda::kThreads), cuda::kThreads, 0, cuda::stream(w)>>>(cdf.data<float>(),
                                                                                                  w.data<float>(), p);
  cuda::check_launch("vmf_sample_icdf");
  return {w};
}

std::vector<Tensor> vmf_sample_wood_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& like = in[0];
  const VmfWoodParams p = vmf_wood_plan(like, attrs);
  Tensor w = empty(like.shape, DType::Float32, like.device());
  const int64_t n = like.numel();
  if (n == 0) return {w};
  vmf_wood_kernel<<<cuda::blocks_for(n, cuda::kThreads), cuda::kThreads, 0, cuda::stream(w)>>>(w.data<float>(), n, p);
  cuda::check_launch("vmf_sample_wood");
  return {w};
}

}  // namespace

KX_REGISTER_KERNEL(vmf_compose, CUDA, vmf_compose_cuda);
KX_REGISTER_KERNEL(vmf_compose_backward, CUDA, vmf_compose_backward_cuda);
KX_REGISTER_KERNEL(vmf_sample_icdf, CUDA, vmf_sample_icdf_cuda);
KX_REGISTER_KERNEL(vmf_sample_wood, CUDA, vmf_sample_wood_cuda);

}  // namespace kx
