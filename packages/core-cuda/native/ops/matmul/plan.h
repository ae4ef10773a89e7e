// The matmul family's validation and batch layout, shared by the CPU (matmul.cpp) and CUDA
// (matmul.cu) kernels so both accept and reject the same calls with the same errors and walk the
// broadcast batch dims the same way.
#pragma once
#include <algorithm>
#include <climits>
#include <vector>

#include "kx/broadcast.h"
#include "kx/registry.h"

namespace kx {

// One dim of the broadcast batch, with each operand's element stride along it (0 where that operand
// broadcasts). Output batches are contiguous [m, n] blocks.
struct MatmulBatchDim {
  int64_t size, a_stride, b_stride;
};

struct MatmulPlan {
  bool ta, tb;
  int64_t m, n, k;
  Shape out_shape;     // batch dims, then [m, n]
  int64_t nbatch;      // product of the broadcast batch dims
  int64_t b_batches;   // how many [k, n] matrices b holds (1: every output batch shares b)
  // The batch dims coalesced, outermost first: size-1 dims dropped, and neighbours merged where both
  // operands step through them as through one dim. Empty when nbatch == 1.
  std::vector<MatmulBatchDim> batch_dims;

  // Element offsets of output batch t's operands.
  void batch_offsets(int64_t t, int64_t* a_off, int64_t* b_off) const {
    int64_t ai = 0, bi = 0;
    for (size_t d = batch_dims.size(); d-- > 0;) {
      const int64_t idx = t % batch_dims[d].size;
      t /= batch_dims[d].size;
      ai += idx * batch_dims[d].a_stride;
      bi += idx * batch_dims[d].b_stride;
    }
    *a_off = ai;
    *b_off = bi;
  }
};

// Checks a matmul call (operands, transpose flags, optional bias row) and lays out its batches.
inline MatmulPlan plan_matmul(const Tensor& a, const Tensor& b, const Tensor& bias, bool ta, bool tb) {
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

  const Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  Shape batch;
  KX_CHECK(broadcast_shapes(ab, bb, &batch), Shape, "matmul: batch dims of ", shape_str(a.shape), " and ",
           shape_str(b.shape), " do not broadcast");
  MatmulPlan plan{ta, tb, m, n, k, batch, numel_of(batch), numel_of(bb), {}};
  plan.out_shape.push_back(m);
  plan.out_shape.push_back(n);
  // One BLAS call sees at most nbatch·m rows (when the batch folds into m).
  KX_CHECK(plan.nbatch * m <= INT_MAX && n <= INT_MAX && k <= INT_MAX, Arg, "matmul: dimensions too large for BLAS: ",
           shape_str(a.shape), " · ", shape_str(b.shape));

  // Each operand's element stride along every broadcast batch dim, innermost first.
  const size_t rank = batch.size();
  std::vector<MatmulBatchDim> dims(rank);
  int64_t a_mul = m * k, b_mul = k * n;
  for (size_t d = rank; d-- > 0;) {
    const int64_t da_pos = (int64_t)d - (int64_t)(rank - ab.size()), db_pos = (int64_t)d - (int64_t)(rank - bb.size());
    const int64_t da = da_pos >= 0 ? ab[da_pos] : 1, db = db_pos >= 0 ? bb[db_pos] : 1;
    dims[d] = {batch[d], da == 1 ? 0 : a_mul, db == 1 ? 0 : b_mul};
    a_mul *= da;
    b_mul *= db;
  }
  for (const MatmulBatchDim& dim : dims) {
    if (dim.size == 1) continue;
    if (!plan.batch_dims.empty()) {
      MatmulBatchDim& outer = plan.batch_dims.back();
      if (outer.a_stride == dim.a_stride * dim.size && outer.b_stride == dim.b_stride * dim.size) {
        outer = {outer.size * dim.size, dim.a_stride, dim.b_stride};
        continue;
      }
    }
    plan.batch_dims.push_back(dim);
  }
  return plan;
}

}  // namespace kx
