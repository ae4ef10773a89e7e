// matmul on the CPU: OpenBLAS sgemm with the transpose flags passed straight through (no
// transposed copies), batch dims broadcast like NumPy. Half operands are widened to float32
// scratch, multiplied in float32 and rounded once at the end. A bias row is the epilogue of the
// product: the output starts as copies of it and sgemm accumulates onto it (beta = 1), which costs
// no more than the zeroing pass sgemm makes for beta = 0, and saves a separate add over the output.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <type_traits>

#include "cpu/broadcast.h"
#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"

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
  const bool ta = attrs.flag("transA", false), tb = attrs.flag("transB", false);
  KX_CHECK(a.dtype == b.dtype, DType, "matmul: operands must share a dtype, got ", dtype_name(a.dtype), " and ",
           dtype_name(b.dtype));
  KX_CHECK(a.dim() >= 2 && b.dim() >= 2, Shape, "matmul: operands need rank >= 2 (1-D operands are not supported: ",
           "reshape a vector to [1, k] or [k, 1]), got ", shape_str(a.shape), " and ", shape_str(b.shape));
  const int64_t m = ta ? a.size(-1) : a.size(-2), ka = ta ? a.size(-2) : a.size(-1);
  const int64_t kb = tb ? b.size(-1) : b.size(-2), n = tb ? b.size(-2) : b.size(-1);
  KX_CHECK(ka == kb, Shape, "matmul: inner dimensions differ: ", shape_str(a.shape), (ta ? "^T" : ""), " · ",
           shape_str(b.shape), (tb ? "^T" : ""));
  const int64_t k = ka;
  KX_CHECK(!bias.defined() || (bias.dtype == a.dtype && bias.dim() == 1 && bias.shape[0] == n), Shape,
           "matmul: bias must be a ", dtype_name(a.dtype), " vector [", n, "] (one value per output column), got ",
           bias.defined() ? dtype_name(bias.dtype) : "", " ", bias.defined() ? shape_str(bias.shape) : "");

  // Broadcast the batch dims, and note each output batch's operand batches.
  const Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  const size_t rank = std::max(ab.size(), bb.size());
  Shape batch;
  KX_CHECK(cpu::broadcast_shapes(ab, bb, &batch), Shape, "matmul: batch dims of ", shape_str(a.shape), " and ",
           shape_str(b.shape), " do not broadcast");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor y = empty(out_shape, a.dtype, a.device());
  const int64_t nbatch = numel_of(batch), b_batches = numel_of(bb);
  // One sgemm sees at most nbatch·m rows (when the batch folds into m).
  KX_CHECK(nbatch * m <= INT_MAX && n <= INT_MAX && k <= INT_MAX, Arg, "matmul: dimensions too large for BLAS: ",
           shape_str(a.shape), " · ", shape_str(b.shape));
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
      for (int64_t t = 0; t < nbatch; ++t) {
        int64_t rest = t, ai = 0, bi = 0, a_mul = 1, b_mul = 1;
        for (int64_t d = (int64_t)rank - 1; d >= 0; --d) {
          const int64_t idx = rest % batch[d];
          rest /= batch[d];
          const int64_t da_pos = d - (int64_t)(rank - ab.size()), db_pos = d - (int64_t)(rank - bb.size());
          if (da_pos >= 0) {
            if (ab[da_pos] != 1) ai += idx * a_mul;
            a_mul *= ab[da_pos];
          }
          if (db_pos >= 0) {
            if (bb[db_pos] != 1) bi += idx * b_mul;
            b_mul *= bb[db_pos];
          }
        }
        a_off[t] = ai * m * k;
        b_off[t] = bi * k * n;
      }
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
