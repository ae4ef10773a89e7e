// Elementwise ops on the CPU: add/sub/mul/div and where with NumPy broadcasting, broadcast_to, the
// unary functions with their fused backward, and bias + GELU. The per-element math is in
// ops/elementwise/math.h and the unary runs in ops/elementwise/unary_runs.h (which the fused groups
// share); this file only walks memory. Loops run over runs of contiguous output (cpu/broadcast.h)
// whose inputs have stride 1 or 0: the arithmetic and the transcendentals as the vector runs of
// kx/simd.h, the rest as loops the compiler vectorises; half types are widened to float32 a chunk
// at a time.
#include <algorithm>
#include <type_traits>

#include "cpu/broadcast.h"
#include "cpu/partials.h"
#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/elementwise/math.h"
#include "ops/elementwise/plan.h"
#include "ops/elementwise/unary_runs.h"

namespace kx {
namespace {

constexpr int64_t kChunk = 512;  // floats per stack buffer when widening halves

// Reads n elements starting at p (stride 0 or 1) as float32: for float32 with stride 1 the data
// itself, otherwise widened into buf (a stride-0 operand fills buf[0] only, *step = 0).
template <class T>
const float* load(const T* p, int64_t stride, int64_t n, float* buf, int64_t* step) {
  *step = stride;
  return load_row(p, stride == 0 ? 1 : n, buf);
}

// out[i] = a[i*sa] op b[i*sb] with sa, sb in {0, 1}: the binary vector run of kx/simd.h.
template <class T>
void binary_run(simd::BinaryOp op, const T* a, int64_t sa, const T* b, int64_t sb, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    simd::binary(op, a, sa, b, sb, out, n);
  } else {
    float ba[kChunk], bb[kChunk], bo[kChunk];
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t m = std::min(kChunk, n - i);
      int64_t ta, tb;
      const float* fa = load(a + i * sa, sa, m, ba, &ta);
      const float* fb = load(b + i * sb, sb, m, bb, &tb);
      simd::binary(op, fa, ta, fb, tb, bo, m);
      narrow(bo, out + i, m);
    }
  }
}

std::vector<Tensor> binary_cpu(const char* name, simd::BinaryOp op, const Inputs& in) {
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  const Shape shape = binary_out_shape(name, a, b);
  Tensor y = empty(shape, a.dtype, a.device());
  if (y.numel() == 0) return {y};
  const cpu::BroadcastPlan<2> plan(shape, {&a.shape, &b.shape});
  const int64_t sa = plan.inner_stride(0), sb = plan.inner_stride(1);
  KX_DISPATCH_FLOAT(a.dtype, {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    plan.parallel_for_runs(1 << 15, [&](int64_t o, const int64_t* off, int64_t n) {
      binary_run(op, pa + off[0], sa, pb + off[1], sb, py + o, n);
    });
  });
  return {y};
}

std::vector<Tensor> add_cpu(const Inputs& in, const Attrs&) { return binary_cpu("add", simd::BinaryOp::Add, in); }
std::vector<Tensor> sub_cpu(const Inputs& in, const Attrs&) { return binary_cpu("sub", simd::BinaryOp::Sub, in); }
std::vector<Tensor> mul_cpu(const Inputs& in, const Attrs&) { return binary_cpu("mul", simd::BinaryOp::Mul, in); }
std::vector<Tensor> div_cpu(const Inputs& in, const Attrs&) { return binary_cpu("div", simd::BinaryOp::Div, in); }

// ---- where ------------------------------------------------------------------------------------

// A select copies storage (half bits included): no widening needed.
template <class T>
void where_run(const uint8_t* c, int64_t sc, const T* a, int64_t sa, const T* b, int64_t sb, T* out, int64_t n) {
  if (sc && sa && sb) {
    for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? a[i] : b[i];
  } else if (sc && !sa && !sb) {  // masked fill of two scalars, e.g. where(mask, x, -inf) backward
    const T av = a[0], bv = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? av : bv;
  } else if (sc && sa && !sb) {
    const T bv = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? a[i] : bv;
  } else if (sc && !sa && sb) {
    const T av = a[0];
    for (int64_t i = 0; i < n; ++i) out[i] = c[i] ? av : b[i];
  } else if (!sc) {  // one condition for the whole run: a copy of one side
    const T* src = c[0] ? a : b;
    const int64_t s = c[0] ? sa : sb;
    if (s) std::copy(src, src + n, out);
    else std::fill(out, out + n, src[0]);
  }
}

std::vector<Tensor> where_cpu(const Inputs& in, const Attrs&) {
  const Tensor& c = in[0];
  const Tensor& a = in[1];
  const Tensor& b = in[2];
  const Shape shape = where_out_shape(c, a, b);
  Tensor y = empty(shape, a.dtype, a.device());
  if (y.numel() == 0) return {y};
  const cpu::BroadcastPlan<3> plan(shape, {&c.shape, &a.shape, &b.shape});
  const int64_t sc = plan.inner_stride(0), sa = plan.inner_stride(1), sb = plan.inner_stride(2);
  KX_DISPATCH_FLOAT(a.dtype, {
    const uint8_t* pc = c.data<uint8_t>();
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    plan.parallel_for_runs(1 << 15, [&](int64_t o, const int64_t* off, int64_t n) {
      where_run(pc + off[0], sc, pa + off[1], sa, pb + off[2], sb, py + o, n);
    });
  });
  return {y};
}

// ---- broadcast_to -----------------------------------------------------------------------------

// Copies bytes of width sizeof(T): any dtype (masks included) moves as raw storage.
template <class T>
void broadcast_copy(const Tensor& x, Tensor& y) {
  const cpu::BroadcastPlan<1> plan(y.shape, {&x.shape});
  const int64_t sx = plan.inner_stride(0);
  const T* px = static_cast<const T*>(x.raw());
  T* py = static_cast<T*>(y.raw());
  plan.parallel_for_runs(1 << 16, [&](int64_t o, const int64_t* off, int64_t n) {
    if (sx) std::copy(px + off[0], px + off[0] + n, py + o);
    else std::fill(py + o, py + o + n, px[off[0]]);
  });
}

std::vector<Tensor> broadcast_to_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Shape shape = broadcast_to_shape(x, attrs);
  Tensor y = empty(shape, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  switch (dtype_size(x.dtype)) {
    case 1: broadcast_copy<uint8_t>(x, y); break;
    case 2: broadcast_copy<uint16_t>(x, y); break;
    case 4: broadcast_copy<uint32_t>(x, y); break;
    default: fail(Code::Internal, "broadcast_to: unexpected element size");
  }
  return {y};
}

// ---- unary ------------------------------------------------------------------------------------

// Transcendental functions cost far more per element than a load: smaller chunks per task.
constexpr int64_t kUnaryGrain = 1 << 13;

template <UnaryFn F, class T>
void unary_loop(const T* x, T* y, int64_t n, float p) {
  cpu::parallel_for(n, kUnaryGrain, [&](int64_t begin, int64_t end) {
    float bx[kBlock], by[kBlock];
    int64_t i = begin;
    if constexpr (std::is_same_v<T, float>) {
      const int64_t whole = (end - begin) / kBlock * kBlock;
      unary_blocks<F>(x + i, y + i, whole, p);
      i += whole;
    }
    for (; i < end; i += kBlock) {
      const int64_t m = std::min(kBlock, end - i);
      widen_block(x + i, m, bx);
      unary_blocks<F>(bx, by, kBlock, p);
      narrow(by, y + i, m);
    }
  });
}

std::vector<Tensor> unary_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const UnaryFn fn = unary_fn("unary", attrs);
  const float p = (float)attrs.num("exponent", 1.0);
  Tensor y = empty(x.shape, x.dtype, x.device());
  KX_DISPATCH_FLOAT(x.dtype, {
    KX_DISPATCH_UNARY(fn, unary_loop<kFn>(x.data<scalar_t>(), y.data<scalar_t>(), x.numel(), p));
  });
  return {y};
}

// dx = dy * f'(x, y) in one pass over three inputs of one shape, in blocks as unary_loop.
template <UnaryFn F, class T>
void unary_backward_loop(const T* x, const T* y, const T* dy, T* dx, int64_t n, float p) {
  cpu::parallel_for(n, kUnaryGrain, [&](int64_t begin, int64_t end) {
    float bx[kBlock], by[kBlock], bd[kBlock], bo[kBlock];
    int64_t i = begin;
    if constexpr (std::is_same_v<T, float>) {
      const int64_t whole = (end - begin) / kBlock * kBlock;
      unary_backward_blocks<F>(x + i, y + i, dy + i, dx + i, whole, p);
      i += whole;
    }
    for (; i < end; i += kBlock) {
      const int64_t m = std::min(kBlock, end - i);
      widen_block(x + i, m, bx);
      widen_block(y + i, m, by);
      widen_block(dy + i, m, bd);
      unary_backward_blocks<F>(bx, by, bd, bo, kBlock, p);
      narrow(bo, dx + i, m);
    }
  });
}

std::vector<Tensor> unary_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Tensor& y = in[1];
  const Tensor& dy = in[2];
  check_unary_backward(x, y, dy);
  const UnaryFn fn = unary_fn("unary_backward", attrs);
  const float p = (float)attrs.num("exponent", 1.0);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  KX_DISPATCH_FLOAT(x.dtype, {
    KX_DISPATCH_UNARY(fn, unary_backward_loop<kFn>(x.data<scalar_t>(), y.data<scalar_t>(), dy.data<scalar_t>(),
                                                   dx.data<scalar_t>(), x.numel(), p));
  });
  return {dx};
}

// ---- bias + GELU ------------------------------------------------------------------------------

// The fused tier's y = gelu(x + bias) over rows of x. A row is walked in blocks of kBlock elements,
// as the unary ops are (every element takes the same vector instructions wherever it sits); the last
// partial block of a row goes through zero-padded buffers; the bias row is float32 and zero-padded
// to whole blocks. It differs from gelu(add(x, b)) only in halves, where it does not round x + b
// before the GELU. dbias is reduced over rows through per-block partials summed in a fixed order.
int64_t padded_to_blocks(int64_t d) { return (d + kBlock - 1) / kBlock * kBlock; }

std::vector<float> padded_bias_row(const Tensor& bias, int64_t d) {
  std::vector<float> row((size_t)padded_to_blocks(d), 0.0f);
  KX_DISPATCH_FLOAT(bias.dtype, widen(bias.data<scalar_t>(), row.data(), d));
  return row;
}

// x + bias, then the run of the unfused GELU over n elements (a multiple of kBlock), so that
// float32 gives gelu(add(x, b))'s bits.
template <bool kTanh>
inline void bias_gelu_blocks(const float* __restrict x, const float* __restrict bias, float* __restrict y, int64_t n) {
  simd::binary(simd::BinaryOp::Add, x, 1, bias, 1, y, n);
  (kTanh ? simd::gelu_tanh : simd::gelu_erf)(y, y, n);
}

// The most elements one call of the backward's vector run takes (x + bias goes through a buffer).
constexpr int64_t kBackwardRun = 16 * kBlock;

// dx = dy * gelu'(x + bias) for n elements (a multiple of kBlock, at most kBackwardRun), also added
// into the dbias partial.
template <bool kTanh>
inline void bias_gelu_backward_blocks(const float* __restrict dy, const float* __restrict x,
                                      const float* __restrict bias, float* __restrict dx, float* __restrict dbias,
                                      int64_t n) {
  float z[kBackwardRun];
  simd::binary(simd::BinaryOp::Add, x, 1, bias, 1, z, n);
  (kTanh ? simd::gelu_tanh_grad : simd::gelu_erf_grad)(z, dy, dx, n);
  simd::binary(simd::BinaryOp::Add, dbias, 1, dx, 1, dbias, n);
}

template <bool kTanh, class T>
void bias_gelu_forward(const T* x, const float* bias, T* y, int64_t rows, int64_t d) {
  cpu::parallel_for(rows, cpu::grain_for(d * 16), [&](int64_t r0, int64_t r1) {
    float xb[kBlock], yb[kBlock];
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * d;
      T* yr = y + r * d;
      int64_t c = 0;
      if constexpr (std::is_same_v<T, float>) {
        c = d / kBlock * kBlock;
        bias_gelu_blocks<kTanh>(xr, bias, yr, c);
      }
      for (; c < d; c += kBlock) {
        const int64_t m = std::min(kBlock, d - c);
        widen_block(xr + c, m, xb);
        bias_gelu_blocks<kTanh>(xb, bias + c, yb, kBlock);
        narrow(yb, yr + c, m);
      }
    }
  });
}

std::vector<Tensor> bias_gelu_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &bias = in[1];
  const BiasGeluPlan p = bias_gelu_plan(nullptr, x, bias, attrs, "bias_gelu");
  Tensor y = empty(x.shape, x.dtype, x.device());
  const std::vector<float> b = padded_bias_row(bias, p.rows.d);
  KX_DISPATCH_FLOAT(x.dtype, {
    if (p.tanh) bias_gelu_forward<true>(x.data<scalar_t>(), b.data(), y.data<scalar_t>(), p.rows.rows, p.rows.d);
    else bias_gelu_forward<false>(x.data<scalar_t>(), b.data(), y.data<scalar_t>(), p.rows.rows, p.rows.d);
  });
  return {y};
}

template <bool kTanh, class T>
void bias_gelu_backward(const T* dy, const T* x, const float* bias, T* dx, T* dbias, int64_t rows, int64_t d) {
  const int64_t padded = padded_to_blocks(d);
  const int64_t blocks = cpu::partial_blocks(rows, d);
  const int64_t per_block = (rows + blocks - 1) / blocks;
  std::vector<float> partials((size_t)(blocks * padded), 0.0f);  // partials[b] = dbias row of block b
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    float dyb[kBlock], xb[kBlock], dxb[kBlock];
    for (int64_t blk = b0; blk < b1; ++blk) {
      float* pb = partials.data() + blk * padded;
      const int64_t r1 = std::min(rows, (blk + 1) * per_block);
      for (int64_t r = blk * per_block; r < r1; ++r) {
        int64_t c = 0;
        if constexpr (std::is_same_v<T, float>) {
          const int64_t whole = d / kBlock * kBlock;
          for (; c < whole; c += kBackwardRun) {
            const int64_t at = r * d + c;
            bias_gelu_backward_blocks<kTanh>(dy + at, x + at, bias + c, dx + at, pb + c, std::min(kBackwardRun, whole - c));
          }
          c = whole;
        }
        for (; c < d; c += kBlock) {
          const int64_t at = r * d + c, m = std::min(kBlock, d - c);
          widen_block(dy + at, m, dyb);  // padding: dy = 0 adds nothing to dbias
          widen_block(x + at, m, xb);
          bias_gelu_backward_blocks<kTanh>(dyb, xb, bias + c, dxb, pb + c, kBlock);
          narrow(dxb, dx + at, m);
        }
      }
    }
  });
  cpu::sum_block_partials(partials.data(), blocks, padded, d, dbias);
}

std::vector<Tensor> bias_gelu_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &dy = in[0], &x = in[1], &bias = in[2];
  const BiasGeluPlan p = bias_gelu_plan(&dy, x, bias, attrs, "bias_gelu_backward");
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dbias = empty({p.rows.d}, x.dtype, x.device());
  const std::vector<float> b = padded_bias_row(bias, p.rows.d);
  KX_DISPATCH_FLOAT(x.dtype, {
    const scalar_t *dyp = dy.data<scalar_t>(), *xp = x.data<scalar_t>();
    scalar_t *dxp = dx.data<scalar_t>(), *dbp = dbias.data<scalar_t>();
    if (p.tanh) bias_gelu_backward<true>(dyp, xp, b.data(), dxp, dbp, p.rows.rows, p.rows.d);
    else bias_gelu_backward<false>(dyp, xp, b.data(), dxp, dbp, p.rows.rows, p.rows.d);
  });
  return {dx, dbias};
}

}  // namespace

KX_REGISTER_KERNEL(add, CPU, add_cpu);
KX_REGISTER_KERNEL(sub, CPU, sub_cpu);
KX_REGISTER_KERNEL(mul, CPU, mul_cpu);
KX_REGISTER_KERNEL(div, CPU, div_cpu);
KX_REGISTER_KERNEL(where, CPU, where_cpu);
KX_REGISTER_KERNEL(broadcast_to, CPU, broadcast_to_cpu);
KX_REGISTER_KERNEL(unary, CPU, unary_cpu);
KX_REGISTER_KERNEL(unary_backward, CPU, unary_backward_cpu);
KX_REGISTER_KERNEL(bias_gelu, CPU, bias_gelu_cpu);
KX_REGISTER_KERNEL(bias_gelu_backward, CPU, bias_gelu_backward_cpu);

}  // namespace kx
