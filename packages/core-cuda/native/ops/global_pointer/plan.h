// Validation and layout of GlobalPointer scoring and the multilabel cross-entropies, shared by the
// CPU kernels (global_pointer.cpp) and the CUDA ones (global_pointer.cu), so both accept and reject
// the same calls with the same errors.
#pragma once
#include <cmath>

#include "kx/registry.h"

namespace kx {

struct GpDims {
  int64_t B, G, H, n, d;
};

// Checks q, k, mask, start, end (and dy when given) against each other; returns the dimensions.
inline GpDims check_gp(const char* op, const Inputs& in, const Tensor* dy) {
  const Tensor &q = in[0], &k = in[1], &mask = in[2], &start = in[3], &end = in[4];
  KX_CHECK(q.dim() == 4, Shape, op, ": q must be [B, G, n, d], got ", shape_str(q.shape));
  KX_CHECK(k.shape == q.shape, Shape, op, ": k ", shape_str(k.shape), " must have q's shape ", shape_str(q.shape));
  KX_CHECK(k.dtype == q.dtype, DType, op, ": q and k must share a dtype, got ", dtype_name(q.dtype), " and ",
           dtype_name(k.dtype));
  GpDims g{q.shape[0], q.shape[1], q.shape[1], q.shape[2], q.shape[3]};
  KX_CHECK(start.defined() == end.defined(), Arg, op, ": start and end terms come together");
  if (start.defined()) {
    KX_CHECK(start.dim() == 3 && start.shape[0] == g.B && start.shape[2] == g.n, Shape, op, ": start must be [", g.B,
             ", H, ", g.n, "], got ", shape_str(start.shape));
    KX_CHECK(end.shape == start.shape, Shape, op, ": end ", shape_str(end.shape), " must have start's shape ",
             shape_str(start.shape));
    KX_CHECK(start.dtype == q.dtype && end.dtype == q.dtype, DType, op, ": start and end must have q's dtype ",
             dtype_name(q.dtype));
    g.H = start.shape[1];
    KX_CHECK(g.G == g.H || g.G == 1, Shape, op, ": q has ", g.G, " heads, start/end have ", g.H,
             " (they must be equal, or q shared with one head)");
  }
  if (mask.defined()) {
    KX_CHECK(mask.dim() == 2 && mask.shape[0] == g.B && mask.shape[1] == g.n, Shape, op, ": mask must be [", g.B, ", ",
             g.n, "], got ", shape_str(mask.shape));
  }
  if (dy) {
    KX_CHECK(dy->dim() == 4 && dy->shape[0] == g.B && dy->shape[1] == g.H && dy->shape[2] == g.n && dy->shape[3] == g.n,
             Shape, op, ": dy must be [", g.B, ", ", g.H, ", ", g.n, ", ", g.n, "], got ", shape_str(dy->shape));
  }
  return g;
}

// global_pointer_backward's inputs: dy (in[5]) has q's dtype, then the forward's checks.
inline GpDims check_gp_backward(const Inputs& in) {
  const Tensor& dy = in[5];
  KX_CHECK(dy.dtype == in[0].dtype, DType, "global_pointer_backward: dy must have q's dtype");
  return check_gp("global_pointer_backward", in, &dy);
}

// The attributes of both GlobalPointer ops.
inline float gp_scale(const Attrs& attrs, const GpDims& g) {
  return (float)attrs.num("scale", g.d > 0 ? 1.0 / std::sqrt((double)g.d) : 1.0);
}
inline bool gp_tril(const Attrs& attrs) { return attrs.flag("tril", true); }

// The heads [h0, h1) that read group g's dot products.
KX_HD void group_heads(const GpDims& g, int64_t grp, int64_t* h0, int64_t* h1) {
  if (g.G == g.H) {
    *h0 = grp;
    *h1 = grp + 1;
  } else {
    *h0 = 0;
    *h1 = g.H;
  }
}

// ---- multilabel categorical cross-entropy ---------------------------------------------------------

inline void check_rows(const char* op, const Tensor& scores) {
  KX_CHECK(scores.dim() == 2, Shape, op, ": scores must be [R, C], got ", shape_str(scores.shape));
}

// A per-row float32 input of the backward (a logsumexp saved by the forward).
inline void check_float_rows(const Tensor& t, const char* op, const char* what, int64_t R) {
  KX_CHECK(t.dtype == DType::Float32 && t.dim() == 1 && t.shape[0] == R, Shape, op, ": ", what, " must be float32 [", R,
           "], got ", dtype_name(t.dtype), " ", shape_str(t.shape));
}

inline void check_dloss(const Tensor& t, const char* op, int64_t R) {
  KX_CHECK(t.dim() == 1 && t.shape[0] == R, Shape, op, ": dloss must be [", R, "], got ", shape_str(t.shape));
}

inline void check_mlce(const Inputs& in) {
  const Tensor &scores = in[0], &labels = in[1];
  check_rows("multilabel_ce", scores);
  KX_CHECK(labels.shape == scores.shape, Shape, "multilabel_ce: labels ", shape_str(labels.shape),
           " must have the scores' shape ", shape_str(scores.shape));
}

inline void check_mlce_backward(const Inputs& in) {
  const Tensor &scores = in[0], &labels = in[1];
  check_rows("multilabel_ce_backward", scores);
  KX_CHECK(labels.shape == scores.shape, Shape, "multilabel_ce_backward: labels must have the scores' shape");
  const int64_t R = scores.shape[0];
  check_float_rows(in[2], "multilabel_ce_backward", "lse_neg", R);
  check_float_rows(in[3], "multilabel_ce_backward", "lse_pos", R);
  check_dloss(in[4], "multilabel_ce_backward", R);
}

// The sparse labels' shape: int32 [R, P].
inline void check_sparse_shape(const char* op, const Tensor& scores, const Tensor& idx) {
  check_rows(op, scores);
  KX_CHECK(idx.dim() == 2 && idx.shape[0] == scores.shape[0], Shape, op, ": indices must be [", scores.shape[0],
           ", P], got ", shape_str(idx.shape));
}

// Every index in [0, C); `p` is the indices' data on the host.
inline void check_sparse_indices(const char* op, const int32_t* p, int64_t count, int64_t P, int64_t C) {
  for (int64_t e = 0; e < count; ++e) {
    KX_CHECK(p[e] >= 0 && p[e] < C, Arg, op, ": index ", p[e], " at row ", e / P, " is outside [0, ", C, ")");
  }
}

inline void check_sparse_backward(const Inputs& in) {
  const int64_t R = in[0].shape[0];
  check_float_rows(in[2], "sparse_multilabel_ce_backward", "a", R);
  check_float_rows(in[3], "sparse_multilabel_ce_backward", "b", R);
  check_float_rows(in[4], "sparse_multilabel_ce_backward", "pos", R);
  check_dloss(in[5], "sparse_multilabel_ce_backward", R);
}

inline bool sparse_mask_zero(const Attrs& attrs) { return attrs.flag("maskZero", false); }
inline float sparse_epsilon(const Attrs& attrs) { return (float)attrs.num("epsilon", 1e-7); }

}  // namespace kx
