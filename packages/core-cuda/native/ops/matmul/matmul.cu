// matmul on CUDA: cuBLASLt when its library can be opened (cuda/cublaslt.h), with the bias row as
// its epilogue; otherwise, or when cuBLASLt has no algorithm for a product, kexue's own kernels
// (ops/matmul/kernels.cuh: tensor cores for the half types, exact float32 FMAs for float32). Both
// accumulate in float32 and round the output once. Validation and the batch layout are the CPU
// kernel's (ops/matmul/plan.h).
#include <vector>

#include "cuda/cublaslt.h"
#include "cuda/runtime.h"
#include "kx/registry.h"
#include "ops/matmul/kernels.cuh"
#include "ops/matmul/plan.h"

namespace kx {
namespace {

// Calls fn(a_off, b_off, c_off, inner, inner_rank, inner_count) once per launch: the kernels walk
// at most max_inner batch dims themselves (cuBLASLt one, with one stride per operand), and the
// outer ones are looped over here.
template <class F>
void for_each_launch(const std::vector<MatmulBatchDim>& dims, int64_t nbatch, int64_t mn, size_t max_inner, F&& fn) {
  const size_t split = dims.size() > max_inner ? dims.size() - max_inner : 0;
  int64_t outer = 1;
  for (size_t d = 0; d < split; ++d) outer *= dims[d].size;
  const int64_t inner_count = nbatch / outer;
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rest = o, a_off = 0, b_off = 0;
    for (size_t d = split; d-- > 0;) {
      const int64_t idx = rest % dims[d].size;
      rest /= dims[d].size;
      a_off += idx * dims[d].a_stride;
      b_off += idx * dims[d].b_stride;
    }
    fn(a_off, b_off, o * inner_count * mn, dims.data() + split, dims.size() - split, inner_count);
  }
}

template <class T>
void matmul_device(const MatmulPlan& plan, const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& y) {
  const int device = y.device().index;
  cudaStream_t stream = cuda::stream(device);
  const T* A = a.data<T>();
  const T* B = b.data<T>();
  const T* bias_row = bias.defined() ? bias.data<T>() : nullptr;
  T* C = y.data<T>();

  // b shared by every batch and a's rows contiguous: one [batch·m, k] · [k, n] product (as on CPU).
  const bool fold = plan.b_batches == 1 && !plan.ta;
  const int64_t m = fold ? plan.nbatch * plan.m : plan.m, n = plan.n, k = plan.k;
  const std::vector<MatmulBatchDim> dims = fold ? std::vector<MatmulBatchDim>{} : plan.batch_dims;
  const int64_t nbatch = fold ? 1 : plan.nbatch;

  if (k > 0 && cuda::lt::available()) {
    Tensor workspace;
    auto scratch = [&](size_t bytes) {
      workspace = empty({(int64_t)bytes}, DType::UInt8, y.device());
      return workspace.raw();
    };
    // The first refusal (which launches nothing) sends the whole product to our kernels, which
    // then recompute any batches cuBLASLt already did.
    bool done = true;
    for_each_launch(dims, nbatch, m * n, 1, [&](int64_t a_off, int64_t b_off, int64_t c_off,
                                                const MatmulBatchDim* inner, size_t rank, int64_t count) {
      if (!done) return;
      cuda::lt::Gemm g{a.dtype, plan.ta, plan.tb, m, n, k, A + a_off, B + b_off, C + c_off};
      g.bias = bias_row;
      g.epilogue = bias_row ? cuda::lt::Epilogue::Bias : cuda::lt::Epilogue::None;
      g.batch = count;
      g.stride_a = rank ? inner[0].a_stride : 0;
      g.stride_b = rank ? inner[0].b_stride : 0;
      g.stride_c = m * n;
      done = cuda::lt::matmul(g, scratch, stream, device);
    });
    if (done) {
      cuda::check_launch("matmul (cuBLASLt)");
      return;
    }
  }

  for_each_launch(dims, nbatch, m * n, gemm::kMaxBatchDims, [&](int64_t a_off, int64_t b_off, int64_t c_off,
                                                                const MatmulBatchDim* inner, size_t rank,
                                                                int64_t count) {
    gemm::Args<T> args{A + a_off, B + b_off, bias_row, C + c_off, (int)m, (int)n, (int)k, plan.ta, plan.tb, {}};
    args.batch.rank = (int)rank;
    args.batch.count = count;
    for (size_t d = 0; d < rank; ++d) {
      args.batch.size[d] = inner[d].size;
      args.batch.a_stride[d] = inner[d].a_stride;
      args.batch.b_stride[d] = inner[d].b_stride;
    }
    gemm::gemm(args, stream);
  });
  cuda::check_launch("matmul");
}

std::vector<Tensor> matmul_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  const Tensor& bias = in[2];
  const MatmulPlan plan = plan_matmul(a, b, bias, attrs.flag("transA", false), attrs.flag("transB", false));
  Tensor y = empty(plan.out_shape, a.dtype, a.device());
  if (y.numel() == 0) return {y};
  KX_DISPATCH_FLOAT(a.dtype, matmul_device<scalar_t>(plan, a, b, bias, y));
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(matmul, CUDA, matmul_cuda);

}  // namespace kx
