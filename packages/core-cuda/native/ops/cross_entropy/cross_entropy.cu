// Softmax cross-entropy with ignore-index on CUDA (PyTorch's F.cross_entropy, reduction 'mean'),
// the twin of cross_entropy.cpp: validation from ops/cross_entropy/plan.h (the labels are copied to
// the host for it: the check needs their values, and names the first bad row as the CPU does),
// kernels from ops/cross_entropy/kernels.cuh, element math from kx/softmax.h.
#include <vector>

#include "cuda/runtime.h"
#include "kx/registry.h"
#include "ops/cross_entropy/kernels.cuh"
#include "ops/cross_entropy/plan.h"

namespace kx {
namespace {

// The labels' values on the host, read after the work queued on the stream.
std::vector<int32_t> host_labels(const Tensor& labels) {
  std::vector<int32_t> out((size_t)labels.numel());
  if (out.empty()) return out;
  cudaStream_t stream = cuda::stream(labels);
  cuda::check(cudaMemcpyAsync(out.data(), labels.raw(), out.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream),
              "cross_entropy: labels to host");
  cuda::check(cudaStreamSynchronize(stream), "cross_entropy: labels to host");
  return out;
}

std::vector<Tensor> cross_entropy_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &logits = in[0], &labels = in[1];
  const int64_t ignore = attrs.int_("ignoreIndex", -100);
  const int64_t count = check_ce("cross_entropy", logits, labels, host_labels(labels).data(), ignore);
  const int64_t N = logits.shape[0], C = logits.shape[1];
  const bool with_grad = attrs.has("dloss");
  Tensor loss = empty({}, DType::Float32, logits.device());
  Tensor dx = with_grad ? empty(logits.shape, logits.dtype, logits.device()) : Tensor{};
  Tensor row_loss = empty({N}, DType::Float32, logits.device());
  cudaStream_t stream = cuda::stream(logits);
  KX_DISPATCH_FLOAT(logits.dtype, cuda::launch_cross_entropy_rows(
                                      logits.data<scalar_t>(), labels.data<int32_t>(), N, C, ignore, nullptr,
                                      (float)attrs.num("dloss", 1.0) / (float)count, row_loss.data<float>(),
                                      with_grad ? dx.data<scalar_t>() : nullptr, stream));
  cuda::launch_cross_entropy_mean(row_loss.data<float>(), N, count, loss.data<float>(), stream);
  cuda::check_launch("cross_entropy");
  if (with_grad) return {loss, dx};
  return {loss};
}

std::vector<Tensor> cross_entropy_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &logits = in[0], &labels = in[1], &dloss = in[2];
  const int64_t ignore = attrs.int_("ignoreIndex", -100);
  const int64_t count = check_ce("cross_entropy_backward", logits, labels, host_labels(labels).data(), ignore);
  const int64_t N = logits.shape[0], C = logits.shape[1];
  check_ce_dloss(dloss);
  Tensor dx = empty(logits.shape, logits.dtype, logits.device());
  Tensor scale = empty({}, DType::Float32, logits.device());
  cudaStream_t stream = cuda::stream(logits);
  KX_DISPATCH_FLOAT(dloss.dtype, cuda::cross_entropy_scale_kernel<<<1, 1, 0, stream>>>(
                                     dloss.data<scalar_t>(), (float)count, scale.data<float>()));
  KX_DISPATCH_FLOAT(logits.dtype, cuda::launch_cross_entropy_rows(logits.data<scalar_t>(), labels.data<int32_t>(), N,
                                                                  C, ignore, scale.data<float>(), 0.0f, nullptr,
                                                                  dx.data<scalar_t>(), stream));
  cuda::check_launch("cross_entropy_backward");
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(cross_entropy, CUDA, cross_entropy_cuda);
KX_REGISTER_KERNEL(cross_entropy_backward, CUDA, cross_entropy_backward_cuda);

}  // namespace kx
