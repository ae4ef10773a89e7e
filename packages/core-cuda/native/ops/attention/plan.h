// Validation and layout of the attention ops, shared by the CPU kernel (attention.cpp) and the CUDA
// one (attention.cu), so both accept and reject the same calls with the same errors. Masks and
// biases broadcast to [B, H, Tq, Tk] by strides (0 on broadcast axes), never materialised.
#pragma once
#include <algorithm>
#include <cmath>

#include "kx/registry.h"

namespace kx {

// Element strides of a mask or bias broadcast to [B, H, Tq, Tk]: 0 on axes where it has size 1.
struct Bcast {
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
  bool full = false;  // no axis broadcast: each (b, h, i, j) has its own element
  KX_HD int64_t offset(int64_t b, int64_t h, int64_t i) const { return b * sb + h * sh + i * sq; }
};

inline Bcast broadcast_strides(const Tensor& t, const int64_t full[4], const char* op, const char* what) {
  KX_CHECK(t.dim() <= 4, Shape, op, ": ", what, " of shape ", shape_str(t.shape), " has rank > 4");
  int64_t dims[4] = {1, 1, 1, 1};
  const int64_t pad = 4 - t.dim();
  for (int64_t a = 0; a < t.dim(); ++a) dims[pad + a] = t.shape[a];
  int64_t strides[4];
  int64_t s = 1;
  bool is_full = true;
  for (int a = 3; a >= 0; --a) {
    KX_CHECK(dims[a] == 1 || dims[a] == full[a], Shape, op, ": ", what, " of shape ", shape_str(t.shape),
             " does not broadcast to [", full[0], ", ", full[1], ", ", full[2], ", ", full[3], "]");
    strides[a] = dims[a] == 1 ? 0 : s;
    is_full = is_full && dims[a] == full[a];
    s *= dims[a];
  }
  Bcast out;
  out.sb = strides[0];
  out.sh = strides[1];
  out.sq = strides[2];
  out.sk = strides[3];
  out.full = is_full;
  return out;
}

// The sizes and attributes of one attention call (inputs q, k, v, mask?, bias?, ...).
struct AttnShape {
  int64_t B, H, Tq, Tk, D, Dv;
  float scale;
  bool causal;
  int64_t offset;  // Tk - Tq: causal rows see keys j <= i + offset
  Bcast ms;        // mask strides (when a mask is given)
  Bcast bs;        // bias strides (when a bias is given)

  // Keys [0, end) that any of the query rows [i0, i1) may see.
  KX_HD int64_t key_end(int64_t i1) const {
    if (!causal) return Tk;
    const int64_t e = i1 + offset;
    return e < 0 ? 0 : e > Tk ? Tk : e;
  }
  // The first query row that sees key j0 (causal), else 0.
  KX_HD int64_t visible_from(int64_t j0) const {
    if (!causal) return 0;
    return j0 - offset > 0 ? j0 - offset : 0;
  }
};

// Validates q, k, v, mask, bias and the attributes (what the kernels rely on).
inline AttnShape plan_attention(const Inputs& in, const Attrs& attrs, const char* op) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &mask = in[3], &bias = in[4];
  KX_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, Shape, op, ": q, k, v must have rank 4 [B, H, T, D], got ",
           shape_str(q.shape), ", ", shape_str(k.shape), ", ", shape_str(v.shape));
  KX_CHECK(q.dtype == k.dtype && q.dtype == v.dtype, DType, op, ": q, k, v must share a dtype, got ",
           dtype_name(q.dtype), ", ", dtype_name(k.dtype), ", ", dtype_name(v.dtype));
  AttnShape p;
  p.B = q.shape[0];
  p.H = q.shape[1];
  p.Tq = q.shape[2];
  p.D = q.shape[3];
  p.Tk = k.shape[2];
  p.Dv = v.shape[3];
  KX_CHECK(k.shape[0] == p.B && k.shape[1] == p.H && v.shape[0] == p.B && v.shape[1] == p.H, Shape, op,
           ": batch and head dims of q ", shape_str(q.shape), ", k ", shape_str(k.shape), ", v ",
           shape_str(v.shape), " differ");
  KX_CHECK(k.shape[3] == p.D, Shape, op, ": q and k head dims differ: ", shape_str(q.shape), " vs ",
           shape_str(k.shape));
  KX_CHECK(v.shape[2] == p.Tk, Shape, op, ": k and v lengths differ: ", shape_str(k.shape), " vs ",
           shape_str(v.shape));
  const double scale = attrs.num("scale", p.D > 0 ? 1.0 / std::sqrt((double)p.D) : 1.0);
  KX_CHECK(std::isfinite(scale), Arg, op, ": scale must be finite, got ", scale);
  p.scale = (float)scale;
  p.causal = attrs.flag("causal", false);
  p.offset = p.Tk - p.Tq;
  const int64_t full[4] = {p.B, p.H, p.Tq, p.Tk};
  if (mask.defined()) {
    KX_CHECK(mask.dtype == DType::UInt8, DType, op, ": mask must be uint8, got ", dtype_name(mask.dtype));
    p.ms = broadcast_strides(mask, full, op, "mask");
  }
  if (bias.defined()) p.bs = broadcast_strides(bias, full, op, "bias");
  return p;
}

// The backward's extra inputs: out, lse, dout (in[5], in[6], in[7]).
inline void check_attention_backward(const AttnShape& p, const Inputs& in) {
  const Tensor &out = in[5], &lse = in[6], &dout = in[7];
  const Shape out_shape{p.B, p.H, p.Tq, p.Dv};
  KX_CHECK(out.shape == out_shape && dout.shape == out_shape, Shape, "attention_backward: out ",
           shape_str(out.shape), " and dout ", shape_str(dout.shape), " must be ", shape_str(out_shape));
  KX_CHECK(lse.dtype == DType::Float32 && lse.shape == Shape({p.B, p.H, p.Tq}), Shape,
           "attention_backward: lse must be float32 [B, H, Tq], got ", dtype_name(lse.dtype), " ", shape_str(lse.shape));
}

}  // namespace kx
