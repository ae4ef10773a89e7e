// Fused attention on the CPU, forward and backward, without a [B, H, Tq, Tk] score matrix: each
// task owns one (batch, head, block of query rows) in the forward (one (batch, head), or blocks of
// queries then of keys, in the backward), computes a block of scores at a time in a thread-local
// buffer with sgemm, and applies the row math of ops/attention/math.h (online softmax forward,
// probabilities recomputed from the saved logsumexp backward). Masks and biases broadcast by
// strides (0 on broadcast axes), never materialised. Half inputs are widened to float32 copies of
// q, k, v once per call (their size, not the scores'), and outputs rounded back row by row.

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/onednn.h"
#include "cpu/partials.h"
#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/attention/math.h"
#include "ops/attention/plan.h"

namespace kx {
namespace {

constexpr int64_t kQueryBlock = 64;
// The multiply-adds of one block product (a query block times a key block: 128 keys at head size
// 64): small enough that a block's scores and its slices of q, k and v stay in the core's cache,
// big enough that each oneDNN call (cpu::onednn::sgemm, on the task's thread) does real work. Twice
// the old OpenBLAS-era block: attention [16, 4, 128, 64] forward + backward 6.2 -> 4.3-5.0 ms.
constexpr int64_t kBlockGemmWork = 8 * 65536;

// A float32 view of a floating tensor: its own data when float32, else a converted copy in store.
const float* f32_data(const Tensor& t, std::vector<float>& store) {
  if (t.dtype == DType::Float32) return t.data<float>();
  store.resize((size_t)t.numel());
  float* dst = store.data();
  KX_DISPATCH_FLOAT(t.dtype, {
    const scalar_t* src = t.data<scalar_t>();
    cpu::parallel_for(t.numel(), 1 << 15, [&](int64_t b, int64_t e) { widen(src + b, dst + b, e - b); });
  });
  return dst;
}

// Writes n floats of src times mul (src is scratch and is scaled in place) to t's storage at
// element offset, in t's dtype.
void write_row(const Tensor& t, int64_t offset, float* src, int64_t n, float mul) {
  if (mul != 1.0f) simd::binary(simd::BinaryOp::Mul, src, 1, &mul, 0, src, n);
  KX_DISPATCH_FLOAT(t.dtype, narrow(src, t.data<scalar_t>() + offset, n));
}

float* scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Everything a task needs about one call, with q/k/v (and the rest) as float32.
struct Problem : AttnShape {
  int64_t key_block;
  const float *q, *k, *v;
  const uint8_t* mask = nullptr;
  const float* bias = nullptr;

  // s = scale * Q[rows] K[j0 : j0 + cols]^T, then bias added and masked entries set to -inf.
  void scores(float* s, const float* qrows, int64_t b, int64_t h, int64_t i0, int64_t rows, const float* kh,
              int64_t j0, int64_t cols) const {
    if (D > 0) {
      cpu::onednn::sgemm(false, true, (int)rows, (int)cols, (int)D, scale, qrows, (int)D,
                  kh + j0 * D, (int)D, 0.0f, s, (int)cols);
    } else {
      std::fill(s, s + rows * cols, 0.0f);
    }
    if (!mask && !bias && !causal) return;
    if (!bias && !causal && ms.sk == 1) {  // a mask alone, keys contiguous (a padding mask): a vector run
      for (int64_t r = 0; r < rows; ++r) simd::mask_fill(s + r * cols, mask + ms.offset(b, h, i0 + r) + j0, cols, -INFINITY);
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      float* srow = s + r * cols;
      const uint8_t* mrow = mask ? mask + ms.offset(b, h, i) + j0 * ms.sk : nullptr;
      const float* brow = bias ? bias + bs.offset(b, h, i) + j0 * bs.sk : nullptr;
      for (int64_t c = 0; c < cols; ++c) {
        const bool keep = (!mrow || mrow[c * ms.sk] != 0) && (!causal || attn_causal_visible(i, j0 + c, offset));
        srow[c] = attn_score(srow[c], brow ? brow[c * bs.sk] : 0.0f, keep);
      }
    }
  }
};

// Writes a block of dk and dv rows (cols keys from j0 of head bh) from their float32 accumulators.
void write_dk_dv(const Problem& p, const Tensor& dk, const Tensor& dv, int64_t bh, int64_t j0, int64_t cols,
                 float* dkacc, float* dvacc) {
  write_row(dk, (bh * p.Tk + j0) * p.D, dkacc, cols * p.D, 1.0f);
  write_row(dv, (bh * p.Tk + j0) * p.Dv, dvacc, cols * p.Dv, 1.0f);
}

int64_t pick_key_block(int64_t D, int64_t Dv) {
  const int64_t width = std::max<int64_t>({D, Dv, 1});
  int64_t kb = kBlockGemmWork / (kQueryBlock * width);
  kb = std::max<int64_t>(16, std::min<int64_t>(256, kb));
  return kb - kb % 16;
}

struct Checked {
  Problem p;
  std::vector<float> q32, k32, v32, bias32;
};

// Validates q, k, v, mask, bias (what the kernels rely on) and fills the problem description.
void check_and_describe(const Inputs& in, const Attrs& attrs, const char* op, Checked& c) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &mask = in[3], &bias = in[4];
  Problem& p = c.p;
  static_cast<AttnShape&>(p) = plan_attention(in, attrs, op);
  p.key_block = pick_key_block(p.D, p.Dv);
  if (mask.defined()) p.mask = mask.data<uint8_t>();
  if (bias.defined()) p.bias = f32_data(bias, c.bias32);
  p.q = f32_data(q, c.q32);
  p.k = f32_data(k, c.k32);
  p.v = f32_data(v, c.v32);
}

std::vector<Tensor> attention_cpu(const Inputs& in, const Attrs& attrs) {
  Checked c;
  check_and_describe(in, attrs, "attention", c);
  const Problem& p = c.p;
  const Tensor& q = in[0];
  Tensor out = empty({p.B, p.H, p.Tq, p.Dv}, q.dtype, q.device());
  Tensor lse = empty({p.B, p.H, p.Tq}, DType::Float32, q.device());
  float* lse_data = lse.data<float>();
  const int64_t nqb = (p.Tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = p.B * p.H * nqb;
  cpu::parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> buf;
    float* s = scratch(buf, (size_t)(kQueryBlock * (p.key_block + p.Dv + 2)));
    float* acc = s + kQueryBlock * p.key_block;
    float* m = acc + kQueryBlock * p.Dv;
    float* l = m + kQueryBlock;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / nqb, b = bh / p.H, h = bh % p.H;
      const int64_t i0 = (t % nqb) * kQueryBlock, rows = std::min(kQueryBlock, p.Tq - i0);
      const float* qrows = p.q + (bh * p.Tq + i0) * p.D;
      const float* kh = p.k + bh * p.Tk * p.D;
      const float* vh = p.v + bh * p.Tk * p.Dv;
      std::fill(acc, acc + rows * p.Dv, 0.0f);
      std::fill(m, m + rows, -INFINITY);
      std::fill(l, l + rows, 0.0f);
      const int64_t jend = p.key_end(i0 + rows);
      for (int64_t j0 = 0; j0 < jend; j0 += p.key_block) {
        const int64_t cols = std::min(p.key_block, jend - j0);
        p.scores(s, qrows, b, h, i0, rows, kh, j0, cols);
        for (int64_t r = 0; r < rows; ++r) {
          const float corr = attn_online_update(s + r * cols, cols, &m[r], &l[r]);
          if (corr != 1.0f) simd::binary(simd::BinaryOp::Mul, acc + r * p.Dv, 1, &corr, 0, acc + r * p.Dv, p.Dv);
        }
        if (p.Dv > 0) {
          cpu::onednn::sgemm(false, false, (int)rows, (int)p.Dv, (int)cols, 1.0f, s, (int)cols,
                      vh + j0 * p.Dv, (int)p.Dv, 1.0f, acc, (int)p.Dv);
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = bh * p.Tq + i0 + r;
        const float inv = attn_finish(m[r], l[r], &lse_data[row]);
        write_row(out, row * p.Dv, acc + r * p.Dv, p.Dv, inv);
      }
    }
  });
  return {out, lse};
}

// The backward of one block of rows x cols scores: leaves P in s and dS = P * (dP - D) in ds, and
// adds dS into dbias (when given) at its broadcast position.
struct BackwardBlock {
  const Problem& p;
  const float* dO;    // dout as float32, [B, H, Tq, Dv]
  const float* L;     // lse, [B, H, Tq]
  const float* rowd;  // D_i = dout_i . out_i, [B, H, Tq]

  void operator()(float* s, float* ds, float* dbias, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0,
                  int64_t cols) const {
    const int64_t bh = b * p.H + h;
    const float* kh = p.k + bh * p.Tk * p.D;
    p.scores(s, p.q + (bh * p.Tq + i0) * p.D, b, h, i0, rows, kh, j0, cols);
    if (p.Dv > 0) {
      cpu::onednn::sgemm(false, true, (int)rows, (int)cols, (int)p.Dv, 1.0f,
                  dO + (bh * p.Tq + i0) * p.Dv, (int)p.Dv, p.v + (bh * p.Tk + j0) * p.Dv, (int)p.Dv, 0.0f, ds, (int)cols);
    } else {
      std::fill(ds, ds + rows * cols, 0.0f);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = bh * p.Tq + i0 + r;
      const float lrow = L[row], drow = rowd[row];
      float* srow = s + r * cols;
      float* dsrow = ds + r * cols;
      if (lrow == -INFINITY) {  // fully masked row: no probability, no gradient
        std::fill(srow, srow + cols, 0.0f);
        std::fill(dsrow, dsrow + cols, 0.0f);
        continue;
      }
      exp_shifted_run(srow, srow, cols, lrow);  // the probabilities, from the row's logsumexp
      for (int64_t c = 0; c < cols; ++c) dsrow[c] = attn_dscore(srow[c], dsrow[c], drow);
      if (dbias) {
        float* target = dbias + p.bs.offset(b, h, i0 + r) + j0 * p.bs.sk;
        if (p.bs.sk == 1) {
          simd::binary(simd::BinaryOp::Add, target, 1, dsrow, 1, target, cols);
        } else {
          target[0] += simd::block_sum(dsrow, cols);
        }
      }
    }
  }
};

// dv += P^T dout and dk += scale * dS^T q for one block (rows of queries from i0, cols of keys).
void accumulate_dk_dv(const Problem& p, const float* dO, const float* s, const float* ds, int64_t bh, int64_t i0,
                      int64_t rows, int64_t cols, float* dkacc, float* dvacc) {
  if (p.Dv > 0) {
    cpu::onednn::sgemm(true, false, (int)cols, (int)p.Dv, (int)rows, 1.0f, s, (int)cols,
                dO + (bh * p.Tq + i0) * p.Dv, (int)p.Dv, 1.0f, dvacc, (int)p.Dv);
  }
  if (p.D > 0) {
    cpu::onednn::sgemm(true, false, (int)cols, (int)p.D, (int)rows, p.scale, ds, (int)cols,
                p.q + (bh * p.Tq + i0) * p.D, (int)p.D, 1.0f, dkacc, (int)p.D);
  }
}

// dq += scale * dS k for one block.
void accumulate_dq(const Problem& p, const float* ds, int64_t bh, int64_t j0, int64_t rows, int64_t cols,
                   float* dqacc) {
  if (p.D > 0) {
    cpu::onednn::sgemm(false, false, (int)rows, (int)p.D, (int)cols, p.scale, ds, (int)cols,
                p.k + (bh * p.Tk + j0) * p.D, (int)p.D, 1.0f, dqacc, (int)p.D);
  }
}

std::vector<Tensor> attention_backward_cpu(const Inputs& in, const Attrs& attrs) {
  Checked c;
  check_and_describe(in, attrs, "attention_backward", c);
  const Problem& p = c.p;
  const Tensor &q = in[0], &k = in[1], &v = in[2], &bias = in[4], &out = in[5], &lse = in[6], &dout = in[7];
  check_attention_backward(p, in);
  std::vector<float> dout_store, out_store;
  const float* dO = f32_data(dout, dout_store);
  const float* O = f32_data(out, out_store);
  const int64_t nrows = p.B * p.H * p.Tq;

  // D_i = dout_i . out_i, the softmax Jacobian's row term.
  std::vector<float> rowd((size_t)nrows);
  cpu::parallel_for(nrows, cpu::grain_for(p.Dv + 1), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rowd[r] = simd::block_dot(dO + r * p.Dv, O + r * p.Dv, p.Dv);
  });
  const BackwardBlock block{p, dO, lse.data<float>(), rowd.data()};

  Tensor dq = empty(q.shape, q.dtype, q.device());
  Tensor dk = empty(k.shape, k.dtype, k.device());
  Tensor dv = empty(v.shape, v.dtype, v.device());
  const int64_t qb = kQueryBlock, kb = p.key_block;
  const int64_t nqb = (p.Tq + qb - 1) / qb, nkb = (p.Tk + kb - 1) / kb;
  const int64_t BH = p.B * p.H;

  // Two schedules. With at least as many (b, h) pairs as threads, one task per (b, h) walks key
  // blocks outermost and query blocks inside, accumulating dq for the whole head in a thread-local
  // buffer: five block products per block pair. With fewer pairs than threads (long single
  // sequences) that would leave threads idle, so pass 1 runs per (b, h, query block) for dq and
  // pass 2 per (b, h, key block) for dk and dv, recomputing P and dS (seven products, no atomics).
  const bool per_head = BH >= cpu::num_threads();

  // dbias: a bias without broadcast axes is written in place (each element belongs to one task); a
  // broadcast one is summed into per-chunk partial buffers, added up afterwards, so that no two
  // threads add into the same element.
  const bool want_dbias = bias.defined();
  const int64_t bias_n = want_dbias ? bias.numel() : 0;
  const int64_t tasks = per_head ? BH : BH * nqb;  // the tasks that see scores with dbias
  const bool partials = want_dbias && !p.bs.full;
  const int64_t chunks = partials ? std::max<int64_t>(1, std::min<int64_t>(cpu::num_threads(), tasks)) : tasks;
  std::vector<float> dbias32(partials ? (size_t)(bias_n * chunks) : (size_t)bias_n, 0.0f);

  cpu::parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    thread_local std::vector<float> buf;
    const size_t block_n = (size_t)(qb * kb);
    float* s = scratch(buf, 2 * block_n + (size_t)(kb * (p.D + p.Dv)) + (size_t)((per_head ? p.Tq : qb) * p.D));
    float* ds = s + block_n;
    float* dkacc = ds + block_n;
    float* dvacc = dkacc + kb * p.D;
    float* dqacc = dvacc + kb * p.Dv;
    for (int64_t ch = c0; ch < c1; ++ch) {
      float* dbias = want_dbias ? dbias32.data() + (partials ? ch * bias_n : 0) : nullptr;
      for (int64_t t = ch * tasks / chunks, t_end = (ch + 1) * tasks / chunks; t < t_end; ++t) {
        if (per_head) {
          const int64_t bh = t, b = bh / p.H, h = bh % p.H;
          std::fill(dqacc, dqacc + p.Tq * p.D, 0.0f);
          for (int64_t j0 = 0; j0 < p.Tk; j0 += kb) {
            const int64_t cols = std::min(kb, p.Tk - j0);
            std::fill(dkacc, dkacc + cols * p.D, 0.0f);
            std::fill(dvacc, dvacc + cols * p.Dv, 0.0f);
            for (int64_t i0 = p.visible_from(j0); i0 < p.Tq; i0 += qb) {
              const int64_t rows = std::min(qb, p.Tq - i0);
              block(s, ds, dbias, b, h, i0, rows, j0, cols);
              accumulate_dk_dv(p, dO, s, ds, bh, i0, rows, cols, dkacc, dvacc);
              accumulate_dq(p, ds, bh, j0, rows, cols, dqacc + i0 * p.D);
            }
            write_dk_dv(p, dk, dv, bh, j0, cols, dkacc, dvacc);
          }
          write_row(dq, bh * p.Tq * p.D, dqacc, p.Tq * p.D, 1.0f);
        } else {
          // Pass 1: dq (and dbias) for one block of query rows.
          const int64_t bh = t / nqb, b = bh / p.H, h = bh % p.H;
          const int64_t i0 = (t % nqb) * qb, rows = std::min(qb, p.Tq - i0);
          std::fill(dqacc, dqacc + rows * p.D, 0.0f);
          const int64_t jend = p.key_end(i0 + rows);
          for (int64_t j0 = 0; j0 < jend; j0 += kb) {
            const int64_t cols = std::min(kb, jend - j0);
            block(s, ds, dbias, b, h, i0, rows, j0, cols);
            accumulate_dq(p, ds, bh, j0, rows, cols, dqacc);
          }
          write_row(dq, (bh * p.Tq + i0) * p.D, dqacc, rows * p.D, 1.0f);
        }
      }
    }
  });

  if (!per_head) {
    // Pass 2: dk and dv for one block of keys, over the query rows that see it.
    cpu::parallel_for(BH * nkb, 1, [&](int64_t t0, int64_t t1) {
      thread_local std::vector<float> buf;
      const size_t block_n = (size_t)(qb * kb);
      float* s = scratch(buf, 2 * block_n + (size_t)(kb * (p.D + p.Dv)));
      float* ds = s + block_n;
      float* dkacc = ds + block_n;
      float* dvacc = dkacc + kb * p.D;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t bh = t / nkb, b = bh / p.H, h = bh % p.H;
        const int64_t j0 = (t % nkb) * kb, cols = std::min(kb, p.Tk - j0);
        std::fill(dkacc, dkacc + cols * p.D, 0.0f);
        std::fill(dvacc, dvacc + cols * p.Dv, 0.0f);
        for (int64_t i0 = p.visible_from(j0); i0 < p.Tq; i0 += qb) {
          const int64_t rows = std::min(qb, p.Tq - i0);
          block(s, ds, nullptr, b, h, i0, rows, j0, cols);
          accumulate_dk_dv(p, dO, s, ds, bh, i0, rows, cols, dkacc, dvacc);
        }
        write_dk_dv(p, dk, dv, bh, j0, cols, dkacc, dvacc);
      }
    });
  }

  std::vector<Tensor> grads{dq, dk, dv};
  if (want_dbias) {
    Tensor dbias = empty(bias.shape, bias.dtype, bias.device());
    const float* partial = dbias32.data();
    const int64_t parts = partials ? chunks : 1;
    KX_DISPATCH_FLOAT(bias.dtype, {
      scalar_t* dst = dbias.data<scalar_t>();
      cpu::sum_block_partials(partial, parts, bias_n, bias_n, dst);
    });
    grads.push_back(dbias);
  }
  return grads;
}

}  // namespace

KX_REGISTER_KERNEL(attention, CPU, attention_cpu);
KX_REGISTER_KERNEL(attention_backward, CPU, attention_backward_cpu);

}  // namespace kx
