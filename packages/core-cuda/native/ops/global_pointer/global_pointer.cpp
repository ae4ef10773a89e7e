// GlobalPointer scoring with masks, and the multilabel categorical cross-entropy (dense and
// sparse), on the CPU, forward and backward (ALGORITHMS.md §2.2–2.5; math in
// ops/global_pointer/math.h).
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
#include "kx/registry.h"
#include "ops/global_pointer/math.h"
#include "ops/global_pointer/plan.h"

namespace kx {
namespace {

// A floating tensor's elements as float32: the tensor itself or a widened copy held in buf.
const float* as_float(const Tensor& t, std::vector<float>& buf) {
  if (t.dtype == DType::Float32) return t.data<float>();
  buf.resize((size_t)t.numel());
  KX_DISPATCH_FLOAT(t.dtype, widen(t.data<scalar_t>(), buf.data(), t.numel()));
  return buf.data();
}

inline float dot(const float* a, const float* b, int64_t d) {
  float acc = 0.0f;
  for (int64_t t = 0; t < d; ++t) acc += a[t] * b[t];
  return acc;
}

std::vector<Tensor> global_pointer_cpu(const Inputs& in, const Attrs& attrs) {
  const GpDims g = check_gp("global_pointer", in, nullptr);
  const Tensor &q = in[0], &mask = in[2], &start = in[3];
  const float scale = gp_scale(attrs, g);
  const bool tril = gp_tril(attrs);
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
    // (G = 0 leaves no rows, and no heads per group to divide by)
    const int64_t heads_per_group = g.G > 0 ? g.H / g.G : 0;
    cpu::parallel_for(g.B * g.G * n, cpu::grain_for(n * (d + heads_per_group)), [&](int64_t begin, int64_t stop) {
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
  const GpDims g = check_gp_backward(in);
  const Tensor &q = in[0], &mask = in[2];
  const float scale = gp_scale(attrs, g);
  const bool tril = gp_tril(attrs);
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

std::vector<Tensor> multilabel_ce_cpu(const Inputs& in, const Attrs&) {
  const Tensor &scores = in[0], &labels = in[1];
  check_mlce(in);
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
  check_mlce_backward(in);
  const int64_t R = scores.shape[0], C = scores.shape[1];
  std::vector<float> sbuf, tbuf;
  const float* s = as_float(scores, sbuf);
  const float* t = as_float(labels, tbuf);
  const float* ln = in[2].data<float>();
  const float* lp = in[3].data<float>();
  std::vector<float> gbuf;
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
          row[i] = mlce_grad(sr[i], tr[i], ln[r], lp[r], g);
        }
        narrow(row.data(), out + r * C, C);
      }
    });
  });
  return {dx};
}

// Checks the sparse labels: int32 [R, P], every index in [0, C).
void check_sparse(const char* op, const Tensor& scores, const Tensor& idx) {
  check_sparse_shape(op, scores, idx);
  check_sparse_indices(op, idx.data<int32_t>(), idx.numel(), idx.shape[1], scores.shape[1]);
}

struct SparseRow {
  float loss, a, b, pos;
};

SparseRow sparse_row(const float* s, const int32_t* idx, int64_t C, int64_t P, bool mask_zero, float eps) {
  LseWithZero all;
  for (int64_t i = mask_zero ? 1 : 0; i < C; ++i) all.add(s[i]);
  SparseRow r;
  r.a = all.result();
  sparse_mlce_positives(s, idx, P, mask_zero, &r.b, &r.pos);
  r.loss = sparse_mlce_loss(r.a, r.b, r.pos, eps);
  return r;
}

std::vector<Tensor> sparse_multilabel_ce_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &scores = in[0], &idx = in[1];
  check_sparse("sparse_multilabel_ce", scores, idx);
  const bool mask_zero = sparse_mask_zero(attrs);
  const float eps = sparse_epsilon(attrs);
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
  check_sparse_backward(in);
  const bool mask_zero = sparse_mask_zero(attrs);
  const float eps = sparse_epsilon(attrs);
  const int64_t R = scores.shape[0], C = scores.shape[1], P = idx.shape[1];
  std::vector<float> sbuf, gbuf;
  const float* s = as_float(scores, sbuf);
  const int32_t* ix = idx.data<int32_t>();
  const float* pa = in[2].data<float>();
  const float* pb = in[3].data<float>();
  const float* pp = in[4].data<float>();
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
        for (int64_t i = 0; i < C; ++i)
          row[i] = (mask_zero && i == 0) ? 0.0f : sparse_mlce_grad_all(sr[i], pa[r], g, dfa);
        for (int64_t k = 0; k < P; ++k) {
          const int32_t i = ir[k];
          if (mask_zero && i == 0) continue;
          row[i] += sparse_mlce_grad_positive(sr[i], pb[r], pp[r], g, dfb);
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
