// GlobalPointer scoring with masks, and the multilabel categorical cross-entropy (dense and
// sparse), on the CPU, forward and backward (ALGORITHMS.md §2.2–2.5; math in kx/global_pointer.h).
//
// global_pointer: q, k [B, G, n, d] (G = heads for the original head, 1 for the efficient head's
// shared scores), optional start/end terms [B, H, n], optional padding mask [B, n]. Each task owns
// one (b, g, i) row: the n dot products are computed once and written for every head of the group.
// The backward works per (b, g): the masked upstream gradient summed over the group's heads is
// formed in a thread-local [n, n] buffer, then dq = scale·D·k and dk = scale·Dᵀ·q by plain loops
// (contiguous over d, vectorised), the start/end gradients as its row/column sums per head.
// Half inputs are widened once to float32 copies (q and k are small next to the scores).
//
// multilabel_ce / sparse_multilabel_ce: one task per block of rows [R, C]; per-row losses and the
// logsumexps the backward needs are outputs (float32), so the backward is one more pass.
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/global_pointer.h"
#include "kx/registry.h"

namespace kx {
namespace {

// A floating tensor's elements as float32: the tensor itself or a widened copy held in buf.
const float* as_float(const Tensor& t, std::vector<float>& buf) {
  if (t.dtype == DType::Float32) return t.data<float>();
  buf.resize((size_t)t.numel());
  KX_DISPATCH_FLOAT(t.dtype, widen(t.data<scalar_t>(), buf.data(), t.numel()));
  return buf.data();
}

struct GpDims {
  int64_t B, G, H, n, d;
};

// Checks q, k, mask, start, end (and dy when given) against each other; returns the dimensions.
GpDims check_gp(const char* op, const Inputs& in, const Tensor* dy) {
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

// The heads [h0, h1) that read group g's dot products.
inline void group_heads(const GpDims& g, int64_t grp, int64_t* h0, int64_t* h1) {
  if (g.G == g.H) {
    *h0 = grp;
    *h1 = grp + 1;
  } else {
    *h0 = 0;
    *h1 = g.H;
  }
}

inline float dot(const float* a, const float* b, int64_t d) {
  float acc = 0.0f;
  for (int64_t t = 0; t < d; ++t) acc += a[t] * b[t];
  return acc;
}

std::vector<Tensor> global_pointer_cpu(const Inputs& in, const Attrs& attrs) {
  const GpDims g = check_gp("global_pointer", in, nullptr);
  const Tensor &q = in[0], &mask = in[2], &start = in[3];
  const float scale = (float)attrs.num("scale", g.d > 0 ? 1.0 / std::sqrt((double)g.d) : 1.0);
  const bool tril = attrs.flag("tril", true);
  std::vector<float> qb, kb, sb, eb;
  const float* qf = as_float(q, qb);
  const float* kf = as_float(in[1], kb);
  const float* st = start.defined() ? as_float(start, sb) : nullptr;
  const float* en = start.defined() ? as_float(in[4], eb) : nullptr;
  const uint8_t* m = mask.defined() ? mask.data<uint8_t>() : nullptr;
  const int64_t n = g.n, d = g.d;
  Tensor out = empty({g.B, g.H, n, n}, q.dtype, q.device());
  KX_DISPATCH_FLOAT(q.dtype, {
    scalar_t* o = out.data<scalar_t>();
    cpu::parallel_for(g.B * g.G * n, cpu::grain_for(n * (d + g.H / g.G)), [&](int64_t begin, int64_t stop) {
      std::vector<float> dots((size_t)n), row((size_t)n);
      for (int64_t r = begin; r < stop; ++r) {
        const int64_t i = r % n, bg = r / n, b = bg / g.G, grp = bg % g.G;
        const bool real_i = !m || m[b * n + i];
        const float* qi = qf + (bg * n + i) * d;
        const float* kg = kf + bg * n * d;
        for (int64_t j = 0; j < n; ++j) dots[j] = dot(qi, kg + j * d, d);
        int64_t h0, h1;
        group_heads(g, grp, &h0, &h1);
        for (int64_t h = h0; h < h1; ++h) {
          const int64_t bh = b * g.H + h;
          const float si = st ? st[bh * n + i] : 0.0f;
          const float* ej = en ? en + bh * n : nullptr;
          for (int64_t j = 0; j < n; ++j) {
            const bool keep = gp_keep(real_i, !m || m[b * n + j], i, j, tril);
            row[j] = gp_score(keep, dots[j], scale, si, ej ? ej[j] : 0.0f);
          }
          narrow(row.data(), o + (bh * n + i) * n, n);
        }
      }
    });
  });
  return {out};
}

std::vector<Tensor> global_pointer_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& dy = in[5];
  KX_CHECK(dy.dtype == in[0].dtype, DType, "global_pointer_backward: dy must have q's dtype");
  const GpDims g = check_gp("global_pointer_backward", in, &dy);
  const Tensor &q = in[0], &mask = in[2];
  const float scale = (float)attrs.num("scale", g.d > 0 ? 1.0 / std::sqrt((double)g.d) : 1.0);
  const bool tril = attrs.flag("tril", true);
  std::vector<float> qb, kb, db;
  const float* qf = as_float(q, qb);
  const float* kf = as_float(in[1], kb);
  const float* dyf = as_float(dy, db);
  const uint8_t* m = mask.defined() ? mask.data<uint8_t>() : nullptr;
  const int64_t n = g.n, d = g.d;
  std::vector<float> dq((size_t)q.numel(), 0.0f), dk((size_t)q.numel(), 0.0f);
  std::vector<float> dstart((size_t)(g.B * g.H * n), 0.0f), dend((size_t)(g.B * g.H * n), 0.0f);
  cpu::parallel_for(g.B * g.G, 1, [&](int64_t begin, int64_t stop) {
    std::vector<float> D((size_t)(n * n));
    for (int64_t bg = begin; bg < stop; ++bg) {
      const int64_t b = bg / g.G, grp = bg % g.G;
      int64_t h0, h1;
      group_heads(g, grp, &h0, &h1);
      std::fill(D.begin(), D.end(), 0.0f);
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t bh = b * g.H + h;
        const float* dyh = dyf + bh * n * n;
        float* ds = dstart.data() + bh * n;
        float* de = dend.data() + bh * n;
        for (int64_t i = 0; i < n; ++i) {
          const bool real_i = !m || m[b * n + i];
          float rsum = 0.0f;
          for (int64_t j = 0; j < n; ++j) {
            // select, not multiply: the upstream gradient at a masked entry may be anything.
            const float v = gp_keep(real_i, !m || m[b * n + j], i, j, tril) ? dyh[i * n + j] : 0.0f;
            D[i * n + j] += v;
            rsum += v;
            de[j] += v;
          }
          ds[i] = rsum;
        }
      }
      const float* qg = qf + bg * n * d;
      const float* kg = kf + bg * n * d;
      float* dqg = dq.data() + bg * n * d;
      float* dkg = dk.data() + bg * n * d;
      for (int64_t i = 0; i < n; ++i) {
        float* dqi = dqg + i * d;
        for (int64_t j = 0; j < n; ++j) {
          const float w = D[i * n + j] * scale;
          if (w == 0.0f) continue;
          const float* kj = kg + j * d;
          float* dkj = dkg + j * d;
          const float* qi = qg + i * d;
          for (int64_t t = 0; t < d; ++t) {
            dqi[t] += w * kj[t];
            dkj[t] += w * qi[t];
          }
        }
      }
    }
  });
  auto finish = [&](const std::vector<float>& src, const Shape& shape) {
    Tensor t = empty(shape, q.dtype, q.device());
    KX_DISPATCH_FLOAT(q.dtype, narrow(src.data(), t.data<scalar_t>(), (int64_t)src.size()));
    return t;
  };
  return {finish(dq, q.shape), finish(dk, q.shape), finish(dstart, {g.B, g.H, n}), finish(dend, {g.B, g.H, n})};
}

// ---- multilabel categorical cross-entropy ---------------------------------------------------------

void check_rows(const char* op, const Tensor& scores) {
  KX_CHECK(scores.dim() == 2, Shape, op, ": scores must be [R, C], got ", shape_str(scores.shape));
}

const float* float_rows(const Tensor& t, const char* op, const char* what, int64_t R) {
  KX_CHECK(t.dtype == DType::Float32 && t.dim() == 1 && t.shape[0] == R, Shape, op, ": ", what, " must be float32 [", R,
           "], got ", dtype_name(t.dtype), " ", shape_str(t.shape));
  return t.data<float>();
}

std::vector<Tensor> multilabel_ce_cpu(const Inputs& in, const Attrs&) {
  const Tensor &scores = in[0], &labels = in[1];
  check_rows("multilabel_ce", scores);
  KX_CHECK(labels.shape == scores.shape, Shape, "multilabel_ce: labels ", shape_str(labels.shape),
           " must have the scores' shape ", shape_str(scores.shape));
  const int64_t R = scores.shape[0], C = scores.shape[1];
  std::vector<float> sbuf, tbuf;
  const float* s = as_float(scores, sbuf);
  const float* t = as_float(labels, tbuf);
  Tensor loss = empty({R}, DType::Float32, scores.device());
  Tensor lneg = empty({R}, DType::Float32, scores.device());
  Tensor lpos = empty({R}, DType::Float32, scores.device());
  float *lo = loss.data<float>(), *ln = lneg.data<float>(), *lp = lpos.data<float>();
  cpu::parallel_for(R, cpu::grain_for(4 * C), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      LseWithZero neg, pos;
      const float* sr = s + r * C;
      const float* tr = t + r * C;
      for (int64_t i = 0; i < C; ++i) {
        neg.add(mlce_neg_logit(sr[i], tr[i]));
        pos.add(mlce_pos_logit(sr[i], tr[i]));
      }
      ln[r] = neg.result();
      lp[r] = pos.result();
      lo[r] = ln[r] + lp[r];
    }
  });
  return {loss, lneg, lpos};
}

std::vector<Tensor> multilabel_ce_backward_cpu(const Inputs& in, const Attrs&) {
  const Tensor &scores = in[0], &labels = in[1];
  check_rows("multilabel_ce_backward", scores);
  KX_CHECK(labels.shape == scores.shape, Shape, "multilabel_ce_backward: labels must have the scores' shape");
  const int64_t R = scores.shape[0], C = scores.shape[1];
  std::vector<float> sbuf, tbuf;
  const float* s = as_float(scores, sbuf);
  const float* t = as_float(labels, tbuf);
  const float* ln = float_rows(in[2], "multilabel_ce_backward", "lse_neg", R);
  const float* lp = float_rows(in[3], "multilabel_ce_backward", "lse_pos", R);
  std::vector<float> gbuf;
  KX_CHECK(in[4].dim() == 1 && in[4].shape[0] == R, Shape, "multilabel_ce_backward: dloss must be [", R, "], got ",
           shape_str(in[4].shape));
  const float* gl = as_float(in[4], gbuf);
  Tensor dx = empty(scores.shape, scores.dtype, scores.device());
  KX_DISPATCH_FLOAT(scores.dtype, {
    scalar_t* out = dx.data<scalar_t>();
    cpu::parallel_for(R, cpu::grain_for(4 * C), [&](int64_t b, int64_t e) {
      std::vector<float> row((size_t)C);
      for (int64_t r = b; r < e; ++r) {
        const float* sr = s + r * C;
        const float* tr = t + r * C;
        const float g = gl[r];
        for (int64_t i = 0; i < C; ++i) {
          row[i] = g * (lse_weight(mlce_neg_logit(sr[i], tr[i]), ln[r]) - lse_weight(mlce_pos_logit(sr[i], tr[i]), lp[r]));
        }
        narrow(row.data(), out + r * C, C);
      }
    });
  });
  return {dx};
}

// Checks the sparse labels: int32 [R, P], every index in [0, C).
void check_sparse(const char* op, const Tensor& scores, const Tensor& idx) {
  check_rows(op, scores);
  KX_CHECK(idx.dim() == 2 && idx.shape[0] == scores.shape[0], Shape, op, ": indices must be [", scores.shape[0],
           ", P], got ", shape_str(idx.shape));
  const int32_t* p = idx.data<int32_t>();
  const int64_t C = scores.shape[1];
  for (int64_t e = 0; e < idx.numel(); ++e) {
    KX_CHECK(p[e] >= 0 && p[e] < C, Arg, op, ": index ", p[e], " at row ", e / idx.shape[1], " is outside [0, ", C, ")");
  }
}

struct SparseRow {
  float loss, a, b, pos;
};

SparseRow sparse_row(const float* s, const int32_t* idx, int64_t C, int64_t P, bool mask_zero, float eps) {
  LseWithZero all, pos;
  Lse p;
  for (int64_t i = mask_zero ? 1 : 0; i < C; ++i) all.add(s[i]);
  for (int64_t k = 0; k < P; ++k) {
    const int32_t i = idx[k];
    if (mask_zero && i == 0) continue;
    pos.add(-s[i]);
    p.add(s[i]);
  }
  SparseRow r;
  r.a = all.result();
  r.b = p.result();
  r.pos = pos.result();
  float unused;
  r.loss = sparse_mlce_neg(r.a, r.b, eps, &unused) + r.pos;
  return r;
}

std::vector<Tensor> sparse_multilabel_ce_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &scores = in[0], &idx = in[1];
  check_sparse("sparse_multilabel_ce", scores, idx);
  const bool mask_zero = attrs.flag("maskZero", false);
  const float eps = (float)attrs.num("epsilon", 1e-7);
  const int64_t R = scores.shape[0], C = scores.shape[1], P = idx.shape[1];
  std::vector<float> sbuf;
  const float* s = as_float(scores, sbuf);
  const int32_t* ix = idx.data<int32_t>();
  Tensor loss = empty({R}, DType::Float32, scores.device());
  Tensor ta = empty({R}, DType::Float32, scores.device());
  Tensor tb = empty({R}, DType::Float32, scores.device());
  Tensor tp = empty({R}, DType::Float32, scores.device());
  float *lo = loss.data<float>(), *pa = ta.data<float>(), *pb = tb.data<float>(), *pp = tp.data<float>();
  cpu::parallel_for(R, cpu::grain_for(2 * C + 4 * P), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const SparseRow row = sparse_row(s + r * C, ix + r * P, C, P, mask_zero, eps);
      lo[r] = row.loss;
      pa[r] = row.a;
      pb[r] = row.b;
      pp[r] = row.pos;
    }
  });
  return {loss, ta, tb, tp};
}

std::vector<Tensor> sparse_multilabel_ce_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &scores = in[0], &idx = in[1];
  check_sparse("sparse_multilabel_ce_backward", scores, idx);
  const bool mask_zero = attrs.flag("maskZero", false);
  const float eps = (float)attrs.num("epsilon", 1e-7);
  const int64_t R = scores.shape[0], C = scores.shape[1], P = idx.shape[1];
  std::vector<float> sbuf, gbuf;
  const float* s = as_float(scores, sbuf);
  const int32_t* ix = idx.data<int32_t>();
  const float* pa = float_rows(in[2], "sparse_multilabel_ce_backward", "a", R);
  const float* pb = float_rows(in[3], "sparse_multilabel_ce_backward", "b", R);
  const float* pp = float_rows(in[4], "sparse_multilabel_ce_backward", "pos", R);
  KX_CHECK(in[5].dim() == 1 && in[5].shape[0] == R, Shape, "sparse_multilabel_ce_backward: dloss must be [", R, "], got ",
           shape_str(in[5].shape));
  const float* gl = as_float(in[5], gbuf);
  Tensor dx = empty(scores.shape, scores.dtype, scores.device());
  KX_DISPATCH_FLOAT(scores.dtype, {
    scalar_t* out = dx.data<scalar_t>();
    cpu::parallel_for(R, cpu::grain_for(2 * C + 4 * P), [&](int64_t b, int64_t e) {
      std::vector<float> row((size_t)C);
      for (int64_t r = b; r < e; ++r) {
        const float* sr = s + r * C;
        const int32_t* ir = ix + r * P;
        const float g = gl[r];
        float dfb;
        sparse_mlce_neg(pa[r], pb[r], eps, &dfb);
        const float dfa = 1.0f - dfb;
        // d/ds_i: the a term for every class, then the b and positive terms per occurrence in P.
        for (int64_t i = 0; i < C; ++i) row[i] = (mask_zero && i == 0) ? 0.0f : g * dfa * lse_weight(sr[i], pa[r]);
        for (int64_t k = 0; k < P; ++k) {
          const int32_t i = ir[k];
          if (mask_zero && i == 0) continue;
          row[i] += g * (dfb * lse_weight(sr[i], pb[r]) - lse_weight(-sr[i], pp[r]));
        }
        narrow(row.data(), out + r * C, C);
      }
    });
  });
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(global_pointer, CPU, global_pointer_cpu);
KX_REGISTER_KERNEL(global_pointer_backward, CPU, global_pointer_backward_cpu);
KX_REGISTER_KERNEL(multilabel_ce, CPU, multilabel_ce_cpu);
KX_REGISTER_KERNEL(multilabel_ce_backward, CPU, multilabel_ce_backward_cpu);
KX_REGISTER_KERNEL(sparse_multilabel_ce, CPU, sparse_multilabel_ce_cpu);
KX_REGISTER_KERNEL(sparse_multilabel_ce_backward, CPU, sparse_multilabel_ce_backward_cpu);

}  // namespace kx
