// softmax, log_softmax and their backward on the CPU, along any axis.
//
// The tensor is viewed as [outer, C, inner] around the axis. With inner == 1 (the last axis) the
// row runs of kx/simd.h (kx/softmax.h's formulas) run in place on float32 rows, with no copy; half
// rows are widened to float32 per row. With inner > 1 a tile of up to 16 neighbouring columns is
// gathered into contiguous float32 rows (each read touches one cache line per c), transformed by
// the same row runs, and scattered back.
#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/softmax/plan.h"

namespace kx {
namespace {

using Layout = SoftmaxLayout;

// Calls fn(rows_in[0..N), row_out, C) on every row along the axis: float32 arrays of length C.
// `ins` are N same-shaped inputs, `out` the same-shaped output, all of storage type T.
template <class T, size_t N, class Fn>
void for_each_row(const std::array<const T*, N>& ins, T* out, const Layout& l, Fn fn) {
  const int64_t C = l.C, inner = l.inner;
  if (l.outer * C * inner == 0) return;
  if (inner == 1) {
    cpu::parallel_for(l.outer, cpu::grain_for(4 * C), [&](int64_t b, int64_t e) {
      constexpr bool f32 = std::is_same<T, float>::value;
      std::vector<float> buf(f32 ? 0 : (N + 1) * C);
      auto row_buf = [&](size_t k) { return f32 ? nullptr : buf.data() + k * C; };
      std::array<const float*, N> rows;
      for (int64_t o = b; o < e; ++o) {
        for (size_t k = 0; k < N; ++k) rows[k] = load_row(ins[k] + o * C, C, row_buf(k));
        float* y = out_row(out + o * C, row_buf(N));
        fn(rows, y, C);
        narrow(y, out + o * C, C);
      }
    });
    return;
  }
  // Column tiles: W columns of one outer slab become W contiguous rows of length C.
  const int64_t W = std::max<int64_t>(1, std::min<int64_t>({16, inner, (1 << 16) / std::max<int64_t>(C, 1)}));
  const int64_t tiles = (inner + W - 1) / W;
  cpu::parallel_for(l.outer * tiles, cpu::grain_for(4 * C * W), [&](int64_t b, int64_t e) {
    std::vector<float> buf((N + 1) * W * C);
    float col[16];  // one c of the tile's w <= 16 columns
    std::array<const float*, N> rows;
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / tiles, j0 = (t % tiles) * W, w = std::min(W, inner - j0);
      const int64_t base = o * C * inner + j0;
      for (size_t k = 0; k < N; ++k) {
        float* tile = buf.data() + k * W * C;
        for (int64_t c = 0; c < C; ++c) {
          widen(ins[k] + base + c * inner, col, w);
          for (int64_t j = 0; j < w; ++j) tile[j * C + c] = col[j];
        }
      }
      float* ytile = buf.data() + N * W * C;
      for (int64_t j = 0; j < w; ++j) {
        for (size_t k = 0; k < N; ++k) rows[k] = buf.data() + k * W * C + j * C;
        fn(rows, ytile + j * C, C);
      }
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t j = 0; j < w; ++j) col[j] = ytile[j * C + c];
        narrow(col, out + base + c * inner, w);
      }
    }
  });
}

template <bool Log> std::vector<Tensor> softmax_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Layout l = softmax_layout(Log ? "log_softmax" : "softmax", x, attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  KX_DISPATCH_FLOAT(x.dtype, {
    for_each_row<scalar_t, 1>({x.data<scalar_t>()}, y.data<scalar_t>(), l,
                              [](const std::array<const float*, 1>& r, float* out, int64_t C) {
                                if (Log) simd::log_softmax_row(r[0], out, C);
                                else simd::softmax_row(r[0], out, C);
                              });
  });
  return {y};
}

// softmax_backward(y, dy; axis, log): y is the forward's output, softmax or log-softmax.
std::vector<Tensor> softmax_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &y = in[0], &dy = in[1];
  const Layout l = softmax_backward_layout(y, dy, attrs);
  const bool log = attrs.flag("log", false);
  Tensor dx = empty(y.shape, y.dtype, y.device());
  KX_DISPATCH_FLOAT(y.dtype, {
    for_each_row<scalar_t, 2>({y.data<scalar_t>(), dy.data<scalar_t>()}, dx.data<scalar_t>(), l,
                              [log](const std::array<const float*, 2>& r, float* out, int64_t C) {
                                if (log) simd::log_softmax_backward_row(r[0], r[1], out, C);
                                else simd::softmax_backward_row(r[0], r[1], out, C);
                              });
  });
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(softmax, CPU, softmax_cpu<false>);
KX_REGISTER_KERNEL(log_softmax, CPU, softmax_cpu<true>);
KX_REGISTER_KERNEL(softmax_backward, CPU, softmax_backward_cpu);

}  // namespace kx
