// What eigh, svd and covariance accept and make, checked once for the CPU kernels (linalg.cpp) and
// the CUDA kernels (linalg.cu), and the host computations both backends run: the CUDA kernels copy
// their input to the host, run these and copy the outputs back (linalg.cu says why).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "kx/error.h"
#include "kx/registry.h"
#include "kx/tensor.h"

namespace kx {

// A stack of matrices [..., rows, cols]: `batch` of them.
struct MatrixStack {
  int64_t batch = 1, rows = 0, cols = 0;
  Shape lead;  // the leading (batch) dimensions
};

inline MatrixStack matrix_stack(const char* op, const Tensor& a) {
  KX_CHECK(a.dtype == DType::Float32, DType, op, ": a must be float32 (linear algebra runs in float64 from float32; "
           "cast halves first), got ", dtype_name(a.dtype));
  KX_CHECK(a.dim() >= 2, Shape, op, ": a must be a matrix or a stack of matrices [..., m, n], got ", shape_str(a.shape));
  MatrixStack s;
  s.lead.assign(a.shape.begin(), a.shape.end() - 2);
  s.batch = numel_of(s.lead);
  s.rows = a.shape[a.dim() - 2];
  s.cols = a.shape[a.dim() - 1];
  return s;
}

inline Shape with_tail(Shape lead, std::initializer_list<int64_t> tail) {
  lead.insert(lead.end(), tail);
  return lead;
}

// LAPACK counts in 32-bit integers, its workspaces included (dsyevd's 1 + 6n + 2n² doubles).
constexpr int64_t kMaxEighN = 32767;
constexpr int64_t kMaxSvdK = 16384;

// eigh(a): a [..., n, n] -> values [..., n], vectors [..., n, n].
struct EighPlan {
  MatrixStack m;
  Shape values, vectors;
};

inline EighPlan eigh_plan(const Tensor& a) {
  EighPlan p;
  p.m = matrix_stack("eigh", a);
  KX_CHECK(p.m.rows == p.m.cols, Shape, "eigh: a must be square [..., n, n], got ", shape_str(a.shape));
  KX_CHECK(p.m.rows <= kMaxEighN, Arg, "eigh: n = ", p.m.rows, " is above LAPACK's limit here (", kMaxEighN, ")");
  p.values = with_tail(p.m.lead, {p.m.rows});
  p.vectors = a.shape;
  return p;
}

// svd(a): a [..., m, n] -> u [..., m, k], s [..., k], vh [..., k, n], k = min(m, n).
struct SvdPlan {
  MatrixStack m;
  int64_t k = 0;
  Shape u, s, vh;
};

inline SvdPlan svd_plan(const Tensor& a) {
  SvdPlan p;
  p.m = matrix_stack("svd", a);
  p.k = p.m.rows < p.m.cols ? p.m.rows : p.m.cols;
  KX_CHECK(p.k <= kMaxSvdK && p.m.rows <= INT32_MAX && p.m.cols <= INT32_MAX, Arg, "svd: ", shape_str(a.shape),
           " is above LAPACK's limits here (min(m, n) <= ", kMaxSvdK, ", m and n below 2^31)");
  p.u = with_tail(p.m.lead, {p.m.rows, p.k});
  p.s = with_tail(p.m.lead, {p.k});
  p.vh = with_tail(p.m.lead, {p.k, p.m.cols});
  return p;
}

// covariance(x; beta): x [N, d] -> mean [d], cov [d, d] centred at beta·mean, divided by N.
struct CovariancePlan {
  int64_t n = 0, d = 0;
  double beta = 1;
};

inline CovariancePlan covariance_plan(const Tensor& x, const Attrs& attrs) {
  KX_CHECK(x.dtype == DType::Float32, DType, "covariance: x must be float32 (it is accumulated in float64; cast "
           "halves first), got ", dtype_name(x.dtype));
  KX_CHECK(x.dim() == 2, Shape, "covariance: x must be [N, d] (rows are samples), got ", shape_str(x.shape));
  KX_CHECK(x.shape[0] > 0, Shape, "covariance: x has no rows (", shape_str(x.shape), ")");
  KX_CHECK(x.shape[1] <= INT32_MAX, Arg, "covariance: d = ", x.shape[1], " is above BLAS's 32-bit sizes");
  CovariancePlan p;
  p.n = x.shape[0];
  p.d = x.shape[1];
  p.beta = attrs.num("beta", 1.0);
  KX_CHECK(std::isfinite(p.beta), Arg, "covariance: beta must be a finite number, got ", p.beta);
  return p;
}

// The host computations (linalg.cpp): float32 CPU tensors in, new float32 CPU tensors out. A
// non-finite input is E_ARG; a LAPACK failure E_ARG (no convergence) or E_INTERNAL (a bad argument),
// with LAPACK's info.
std::vector<Tensor> eigh_host(const Tensor& a, const EighPlan& p);
std::vector<Tensor> svd_host(const Tensor& a, const SvdPlan& p);
std::vector<Tensor> covariance_host(const Tensor& x, const CovariancePlan& p);

}  // namespace kx
