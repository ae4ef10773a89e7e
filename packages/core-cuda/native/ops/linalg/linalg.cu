// eigh, svd and covariance on CUDA: a host round trip. The input is copied to the host (after the
// work queued before it), the CPU's float64 path runs (linalg.cpp: LAPACK, and the covariance's
// blocked products on kexue's pool), and the outputs are copied back; so both backends give the same
// bits and the same errors. The build has no cuSOLVER (the toolkit here is cudart and the compilers;
// it could be loaded at run time as cuBLASLt is), and these ops run once per fitted transform, not
// per step: a copy of the input and a host decomposition cost little beside the model forwards that
// made the input.
#include "cuda/runtime.h"
#include "ops/linalg/plan.h"

namespace kx {
namespace {

Tensor to_host(const Tensor& t) {
  Tensor h = empty(t.shape, t.dtype, Device{});
  if (t.nbytes() > 0) cuda::copy_to_host(h.raw(), t.raw(), t.nbytes(), t.device().index);
  return h;
}

std::vector<Tensor> to_device(const std::vector<Tensor>& hs, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& h : hs) {
    Tensor t = empty(h.shape, h.dtype, device);
    if (h.nbytes() > 0) cuda::copy_to_device(t.raw(), h.raw(), h.nbytes(), device.index);
    out.push_back(t);
  }
  return out;
}

std::vector<Tensor> eigh_cuda(const Inputs& in, const Attrs&) {
  const EighPlan p = eigh_plan(in[0]);
  return to_device(eigh_host(to_host(in[0]), p), in[0].device());
}

std::vector<Tensor> svd_cuda(const Inputs& in, const Attrs&) {
  const SvdPlan p = svd_plan(in[0]);
  return to_device(svd_host(to_host(in[0]), p), in[0].device());
}

std::vector<Tensor> covariance_cuda(const Inputs& in, const Attrs& attrs) {
  const CovariancePlan p = covariance_plan(in[0], attrs);
  return to_device(covariance_host(to_host(in[0]), p), in[0].device());
}

}  // namespace

KX_REGISTER_KERNEL(eigh, CUDA, eigh_cuda);
KX_REGISTER_KERNEL(svd, CUDA, svd_cuda);
KX_REGISTER_KERNEL(covariance, CUDA, covariance_cuda);

}  // namespace kx
