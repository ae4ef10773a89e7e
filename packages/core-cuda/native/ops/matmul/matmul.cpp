// matmul on the CPU: OpenBLAS sgemm with the transpose flags passed straight through (no
// transposed copies), batch dims broadcast like NumPy. Half operands are widened to float32
// scratch, multiplied in float32 and rounded once at the end. A bias row is the epilogue of the
// product: the output starts as copies of it and sgemm accumulates onto it (beta = 1), which costs
// no more than the zeroing pass sgemm makes for beta = 0, and saves a separate add over the output.
#include <cblas.h>

#include <algorithm>
#include <memory>
#include <type_traits>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/matmul/plan.h"

namespace kx {
namespace {

// OpenBLAS runs a gemm on the calling thread below m·n·k = 65536·4 (SMP_THRESHOLD_MIN ·
// GEMM_MULTITHREAD_THRESHOLD); products that small are better parallelised across the batch.
constexpr int64_t kSmallGemm = 65536 * 4;

// Element type -> float32, in parallel (a no-op view for float32).
template <class T>
const float* as_float(const Tensor& t, std::unique_ptr<float[]>& scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return t.data<float>();
  } else {
    const int64_t n = t.numel();
    scratch.reset(new float[n > 0 ? n : 1]);
    const T* src = t.data<T>();
    float* dst = scratch.get();
    cpu::parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) { widen(src + b, dst + b, e - b); });
    return dst;
  }
}

struct Gemm {
  bool ta, tb;
  int64_t m, n, k;
  // Leading dimensions of the stored operands (at least 1, as BLAS requires).
  int64_t lda() const { return std::max<int64_t>(1, ta ? m : k); }
  int64_t ldb() const { return std::max<int64_t>(1, tb ? k : n); }
  // c += op(a)·op(b)
  void operator()(const float* a, const float* b, float* c, int64_t rows) const {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)rows,
                (blasint)n, (blasint)k, 1.0f, a, (blasint)lda(), b, (blasint)ldb(), 1.0f, c,
                (blasint)std::max<int64_t>(1, n));
  }
};

// Every row of c [rows, n] set to the bias (or to 0 when there is none), in parallel.
void fill_rows(float* c, int64_t rows, int64_t n, const float* bias) {
  cpu::parallel_for(rows, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, n)), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      if (bias) std::copy(bias, bias + n, c + r * n);
      else std::fill(c + r * n, c + (r + 1) * n, 0.0f);
    }
  });
}

std::vector<Tensor> matmul_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  const Tensor& bias = in[2];
  const MatmulPlan plan = plan_matmul(a, b, bias, attrs.flag("transA", false), attrs.flag("transB", false));
  const bool ta = plan.ta, tb = plan.tb;
  const int64_t m = plan.m, n = plan.n, k = plan.k, nbatch = plan.nbatch, b_batches = plan.b_batches;
  Tensor y = empty(plan.out_shape, a.dtype, a.device());
  if (y.numel() == 0) return {y};

  KX_DISPATCH_FLOAT(a.dtype, {
    std::unique_ptr<float[]> a_tmp, b_tmp, c_tmp;
    const float* A = as_float<scalar_t>(a, a_tmp);
    const float* B = as_float<scalar_t>(b, b_tmp);
    float* C;
    if constexpr (std::is_same_v<scalar_t, float>) {
      C = y.data<float>();
    } else {
      c_tmp.reset(new float[y.numel()]);
      C = c_tmp.get();
    }
    std::unique_ptr<float[]> bias_tmp;
    const float* bias_row = bias.defined() ? as_float<scalar_t>(bias, bias_tmp) : nullptr;
    // The output starts as the bias rows (or zeros) and the products accumulate onto it (beta = 1):
    // OpenBLAS's own beta = 0 pass zeroes C on one thread, slower than this parallel fill.
    fill_rows(C, nbatch * m, n, bias_row);
    const Gemm gemm{ta, tb, m, n, k};
    if (k > 0 && b_batches == 1 && !ta) {
      // b is shared by every batch and a's rows are contiguous: one [batch·m, k] · [k, n] product.
      gemm(A, B, C, nbatch * m);
    } else if (k > 0) {
      // Element offsets of each output batch's operands, broadcasting size-1 dims.
      std::vector<int64_t> a_off(nbatch), b_off(nbatch);
      for (int64_t t = 0; t < nbatch; ++t) plan.batch_offsets(t, &a_off[t], &b_off[t]);
      const int64_t work = m * n * k;
      auto one = [&](int64_t t) { gemm(A + a_off[t], B + b_off[t], C + t * m * n, m); };
      if (work < kSmallGemm && nbatch > 1) {
        cpu::parallel_for(nbatch, std::max<int64_t>(1, kSmallGemm / std::max<int64_t>(1, work)),
                          [&](int64_t s, int64_t e) { for (int64_t t = s; t < e; ++t) one(t); });
      } else {
        for (int64_t t = 0; t < nbatch; ++t) one(t);  // OpenBLAS threads each product
      }
    }
    if constexpr (!std::is_same_v<scalar_t, float>) {
      scalar_t* out = y.data<scalar_t>();
      cpu::parallel_for(y.numel(), 1 << 14, [&](int64_t s, int64_t e) { narrow(C + s, out + s, e - s); });
    }
  });
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(matmul, CPU, matmul_cpu);

}  // namespace kx
