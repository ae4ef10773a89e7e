// Reductions on the CPU: sum, mean, max over any set of axes, and max's backward.
//
// The axes are coalesced (size-1 dims dropped, neighbouring dims that are both reduced or both kept
// merged), so the common cases become one [outer, R, inner] step: rows (inner == 1) use the
// pairwise row sum of kx/reduce.h (the row runs of kx/simd.h); columns (inner > 1) accumulate whole
// rows lane-wise with the binary vector run, with a three-level cascade for accuracy. Axis sets
// that stay split after coalescing (e.g. axes [0, 2] of [A, B, C]) are reduced one group at a time,
// last group first, through a float32 intermediate, so halves are rounded once, at the end.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/reduce.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/reduce/plan.h"

namespace kx {
namespace {

constexpr int64_t kTile = 256;  // columns per task on the inner > 1 path

// Reduction of a contiguous run of n elements into one value (halves widened per block; a float32
// run longer than a block is one call of the row runs, which sum in the same order).
template <class T> float reduce_run(const T* x, int64_t n, RedOp op) {
  if constexpr (std::is_same_v<T, float>) {
    if (op == RedOp::Max) return simd::row_max(x, n);
    if (n > kSumBlock) return simd::row_sum(x, n);
  }
  float buf[kSumBlock];
  if (op == RedOp::Max) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i += kSumBlock) {
      const int64_t len = std::min(kSumBlock, n - i);
      m = max_nan(m, simd::row_max(load_row(x + i, len, buf), len));
    }
    return m;
  }
  PairwiseSum p;
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = std::min(kSumBlock, n - i);
    p.add(simd::block_sum(load_row(x + i, len, buf), len));
  }
  return p.result();
}

// Reduction over rows [r0, r1) of the [R, inner] slab at x, columns [j0, j1), into out[0, j1-j0).
// Sums cascade: 64 rows into `blk`, 64 blocks into `mid`, the rest into `out`.
template <class T>
void reduce_cols(const T* x, int64_t inner, int64_t r0, int64_t r1, int64_t j0, int64_t j1, RedOp op, float* out) {
  const int64_t w = j1 - j0;
  float buf[kTile], blk[kTile], mid[kTile];
  if (op == RedOp::Max) {
    for (int64_t j = 0; j < w; ++j) out[j] = -INFINITY;
    for (int64_t r = r0; r < r1; ++r) {
      const float* v = load_row(x + r * inner + j0, w, buf);
      for (int64_t j = 0; j < w; ++j) out[j] = max_nan(out[j], v[j]);
    }
    return;
  }
  for (int64_t j = 0; j < w; ++j) out[j] = mid[j] = blk[j] = 0.0f;
  int64_t rows = 0;
  for (int64_t r = r0; r < r1; ++r) {
    simd::binary(simd::BinaryOp::Add, blk, 1, load_row(x + r * inner + j0, w, buf), 1, blk, w);
    if (++rows % 64 == 0) {
      simd::binary(simd::BinaryOp::Add, mid, 1, blk, 1, mid, w);
      std::fill(blk, blk + w, 0.0f);
      if (rows % 4096 == 0) {
        simd::binary(simd::BinaryOp::Add, out, 1, mid, 1, out, w);
        std::fill(mid, mid + w, 0.0f);
      }
    }
  }
  simd::binary(simd::BinaryOp::Add, mid, 1, blk, 1, mid, w);
  simd::binary(simd::BinaryOp::Add, out, 1, mid, 1, out, w);
}

// One [outer, R, inner] reduction step: y[o, j] = op over r of x[o, r, j]. Work is split over
// outer rows, column tiles and, when those give the pool too little to do, chunks of R whose
// partial results are combined afterwards.
template <class T> void reduce_step(const T* x, float* y, int64_t outer, int64_t R, int64_t inner, RedOp op) {
  if (outer * inner == 0) return;
  const int64_t tiles = inner == 1 ? 1 : (inner + kTile - 1) / kTile;
  const int64_t width = inner == 1 ? 1 : std::min(inner, kTile);
  const int64_t units = outer * tiles;
  const int64_t threads = cpu::num_threads();
  int64_t chunks = 1;
  if (units < 4 * threads && R * width >= (1 << 16)) {
    chunks = std::min<int64_t>((4 * threads + units - 1) / units, R * width / (1 << 15));
    chunks = std::max<int64_t>(1, std::min<int64_t>(chunks, 64));
  }
  // Chunks of R in whole kSumBlock blocks, so the row cascade inside a chunk is unchanged.
  int64_t clen = (R + chunks - 1) / chunks;
  if (inner == 1) clen = (clen + kSumBlock - 1) / kSumBlock * kSumBlock;
  chunks = clen > 0 ? (R + clen - 1) / clen : 1;
  if (chunks < 1) chunks = 1;
  std::vector<float> partial(chunks > 1 ? (size_t)(outer * chunks * inner) : 0);
  const int64_t tasks = units * chunks;
  const int64_t cost = std::max<int64_t>(1, (R / chunks) * width);
  cpu::parallel_for(tasks, cpu::grain_for(cost), [&](int64_t b, int64_t e) {
    float tmp[kTile];
    for (int64_t t = b; t < e; ++t) {
      const int64_t c = t % chunks, u = t / chunks;
      const int64_t o = u / tiles, tile = u % tiles;
      const int64_t r0 = c * clen, r1 = std::min(R, r0 + clen);
      const T* slab = x + o * R * inner;
      float* dst = chunks > 1 ? partial.data() + (o * chunks + c) * inner : y + o * inner;
      if (inner == 1) {
        dst[0] = r1 > r0 ? reduce_run(slab + r0, r1 - r0, op) : (op == RedOp::Max ? -INFINITY : 0.0f);
      } else {
        const int64_t j0 = tile * kTile, j1 = std::min(inner, j0 + kTile);
        reduce_cols(slab, inner, r0, r1, j0, j1, op, tmp);
        std::copy(tmp, tmp + (j1 - j0), dst + j0);
      }
    }
  });
  if (chunks > 1) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < inner; ++j) {
        float acc = op == RedOp::Max ? -INFINITY : 0.0f;
        for (int64_t c = 0; c < chunks; ++c) {
          const float v = partial[(o * chunks + c) * inner + j];
          acc = op == RedOp::Max ? max_nan(acc, v) : acc + v;
        }
        y[o * inner + j] = acc;
      }
  }
}

// Runs the coalesced plan: one step per reduced group, last first. Returns the float32 result
// (the kept elements in order); `count` gets the number of elements reduced into each.
template <class T> std::vector<float> reduce_all(const T* x, Groups g, RedOp op, float* direct, int64_t* count) {
  *count = 1;
  for (size_t i = 0; i < g.size.size(); ++i) if (g.reduced[i]) *count *= g.size[i];
  std::vector<float> cur, next;
  bool first = true;
  for (;;) {
    int last = -1;
    for (int i = (int)g.size.size() - 1; i >= 0 && last < 0; --i) if (g.reduced[i]) last = i;
    if (last < 0) break;
    bool final_step = true;
    for (int i = 0; i < last; ++i) final_step = final_step && !g.reduced[i];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < last; ++i) outer *= g.size[i];
    for (size_t i = last + 1; i < g.size.size(); ++i) inner *= g.size[i];
    float* dst = direct;
    if (!final_step || !direct) {
      next.assign((size_t)(outer * inner), 0.0f);
      dst = next.data();
    }
    if (first) reduce_step(x, dst, outer, g.size[last], inner, op);
    else reduce_step(cur.data(), dst, outer, g.size[last], inner, op);
    first = false;
    cur.swap(next);
    // Drop the reduced group and merge the kept neighbours it separated.
    g.size.erase(g.size.begin() + last);
    g.reduced.erase(g.reduced.begin() + last);
    if (last > 0 && last < (int)g.size.size() && !g.reduced[last - 1] && !g.reduced[last]) {
      g.size[last - 1] *= g.size[last];
      g.size.erase(g.size.begin() + last);
      g.reduced.erase(g.reduced.begin() + last);
    }
    if (final_step && direct) return {};
  }
  if (first) {
    // Nothing to reduce (every reduced dim has size 1): the result is x itself.
    int64_t n = 1;
    for (int64_t s : g.size) n *= s;
    cur.resize((size_t)n);
    widen(x, cur.data(), n);
    if (direct) { std::copy(cur.begin(), cur.end(), direct); return {}; }
  }
  return cur;
}

template <RedOp Op, bool Mean>
std::vector<Tensor> reduce_cpu(const Inputs& in, const Attrs& attrs) {
  const char* name = Mean ? "mean" : Op == RedOp::Max ? "max" : "sum";
  const Tensor& x = in[0];
  const std::vector<bool> flag = reduced_dims(name, x, attrs);
  const Shape out_shape = reduced_shape(x.shape, flag, attrs.flag("keepDims", false));
  if (Op == RedOp::Max) check_max_reducible(name, x.shape, flag, out_shape);
  Tensor y = empty(out_shape, x.dtype, x.device());
  const Groups g = coalesce(x.shape, flag);
  int64_t count = 1;
  KX_DISPATCH_FLOAT(x.dtype, {
    float* direct = (std::is_same<scalar_t, float>::value && !Mean) ? (float*)y.raw() : nullptr;
    std::vector<float> r = reduce_all(x.data<scalar_t>(), g, Op, direct, &count);
    if (!direct) {
      scalar_t* out = y.data<scalar_t>();
      const int64_t n = (int64_t)r.size();
      // 0/0 gives mean's NaN over an empty reduction, as PyTorch.
      const float div = (float)count;
      cpu::parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
        if (Mean)
          for (int64_t i = b; i < e; ++i) r[i] /= div;
        narrow(r.data() + b, out + b, e - b);
      });
    }
  });
  return {y};
}

// max_backward: dx = dy / (number of maxima) where x equals its max, else 0 (PyTorch's amax rule).
// A group whose max is NaN has no element equal to it and gets zero gradient.
template <class T> void max_backward_loop(const T* x, const T* y, const T* dy, T* dx, const Groups& g) {
  // Kept groups give the output index; reduced groups the elements each output element covers.
  const int n = (int)g.size.size();
  std::vector<int64_t> stride(n);
  int64_t s = 1;
  for (int i = n - 1; i >= 0; --i) { stride[i] = s; s *= g.size[i]; }
  std::vector<int64_t> kept_size, kept_stride, offsets{0};
  for (int i = 0; i < n; ++i) {
    if (!g.reduced[i]) {
      kept_size.push_back(g.size[i]);
      kept_stride.push_back(stride[i]);
      continue;
    }
    std::vector<int64_t> grown;
    grown.reserve(offsets.size() * g.size[i]);
    for (int64_t base : offsets)
      for (int64_t r = 0; r < g.size[i]; ++r) grown.push_back(base + r * stride[i]);
    offsets.swap(grown);
  }
  int64_t outputs = 1;
  for (int64_t k : kept_size) outputs *= k;
  const int64_t R = (int64_t)offsets.size();
  cpu::parallel_for(outputs, cpu::grain_for(2 * R), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t base = 0, rest = o;
      for (int i = (int)kept_size.size() - 1; i >= 0; --i) {
        base += (rest % kept_size[i]) * kept_stride[i];
        rest /= kept_size[i];
      }
      const float m = to_float(y[o]);
      int64_t ties = 0;
      for (int64_t r = 0; r < R; ++r) ties += to_float(x[base + offsets[r]]) == m;
      const float share = ties ? to_float(dy[o]) / (float)ties : 0.0f;
      const T zero = from_float<T>(0.0f), give = from_float<T>(share);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t i = base + offsets[r];
        dx[i] = to_float(x[i]) == m ? give : zero;
      }
    }
  });
}

std::vector<Tensor> max_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &y = in[1], &dy = in[2];
  const std::vector<bool> flag = max_backward_dims(x, y, dy, attrs);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  if (x.numel() == 0) return {dx};
  const Groups g = coalesce(x.shape, flag);
  KX_DISPATCH_FLOAT(x.dtype,
                    max_backward_loop(x.data<scalar_t>(), y.data<scalar_t>(), dy.data<scalar_t>(), dx.data<scalar_t>(), g));
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(sum, CPU, (reduce_cpu<RedOp::Sum, false>));
KX_REGISTER_KERNEL(mean, CPU, (reduce_cpu<RedOp::Sum, true>));
KX_REGISTER_KERNEL(max, CPU, (reduce_cpu<RedOp::Max, false>));
KX_REGISTER_KERNEL(max_backward, CPU, max_backward_cpu);

}  // namespace kx
