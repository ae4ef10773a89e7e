// topk and its gradient on the CPU, rows along the axis in parallel.
//
// A row (read in place when it is a contiguous float32 run, else gathered or widened to float32,
// which keeps the order of halves) is reduced to its k best entries by the ranks of
// ops/topk/math.h. When k is small next to the row (the common case: a few entries of a
// vocabulary-wide row) the row streams through a heap of the k best, O(C log k) at worst and O(C)
// in practice: a block of entries is compared with the worst kept one at once, and after the first
// few blocks almost none holds a better one. Otherwise every entry's rank is written out and
// nth_element and a sort of the first k pick them, O(C + k log k).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/topk/math.h"
#include "ops/topk/plan.h"

namespace kx {
namespace {

constexpr int64_t kBlock = 16;  // entries tested against the bar at once (a loop the compiler vectorises)

// The k (> 0) best ranks of x[0, C), best first, in heap[0, k).
template <bool Largest>
void heap_select(const float* x, int64_t C, int64_t k, uint64_t* heap) {
  const std::greater<uint64_t> worst_on_top;
  for (int64_t i = 0; i < k; ++i) heap[i] = topk_rank(topk_key(x[i], Largest), i);
  std::make_heap(heap, heap + k, worst_on_top);
  // Entries come in index order, so a later one beats the worst kept only with a larger key (on an
  // equal key its index is the higher). The bar is that key, and bar_x the worst kept value for a
  // quick float test that lets through every entry that might beat it (and NaN, and everything when
  // bar_x is NaN); the key decides. A zero or subnormal bar_x becomes -FLT_MIN (FLT_MIN for the
  // smallest): a looser test, which holds also where the CPU reads subnormals as zero (DAZ).
  uint32_t bar = 0;
  float bar_x = 0.0f;
  auto set_bar = [&] {
    bar = (uint32_t)(heap[0] >> 32);
    const float v = x[topk_index(heap[0])];
    bar_x = std::fabs(v) < FLT_MIN ? (Largest ? -FLT_MIN : FLT_MIN) : v;
  };
  auto offer = [&](int64_t i) {
    const uint32_t key = topk_key(x[i], Largest);
    if (key <= bar) return;
    std::pop_heap(heap, heap + k, worst_on_top);
    heap[k - 1] = topk_rank(key, i);
    std::push_heap(heap, heap + k, worst_on_top);
    set_bar();
  };
  set_bar();
  int64_t i = k;
  for (; i + kBlock <= C; i += kBlock) {
    uint32_t maybe = 0;
    for (int64_t j = 0; j < kBlock; ++j) maybe |= Largest ? !(x[i + j] <= bar_x) : !(x[i + j] >= bar_x);
    if (!maybe) continue;
    for (int64_t j = 0; j < kBlock; ++j) offer(i + j);
  }
  for (; i < C; ++i) offer(i);
  std::sort_heap(heap, heap + k, worst_on_top);  // sorted by `greater`: best first
}

// The k (> 0) best ranks of x[0, C), best first, in ranks[0, k) (ranks holds C).
template <bool Largest>
void full_select(const float* x, int64_t C, int64_t k, uint64_t* ranks) {
  const std::greater<uint64_t> best_first;
  for (int64_t i = 0; i < C; ++i) ranks[i] = topk_rank(topk_key(x[i], Largest), i);
  if (k < C) std::nth_element(ranks, ranks + k, ranks + C, best_first);
  std::sort(ranks, ranks + k, best_first);
}

template <class T>
void topk_rows(const T* x, T* values, int32_t* indices, const TopkLayout& l, bool largest) {
  const int64_t C = l.in_len, k = l.out_len, inner = l.inner;
  // The heap while k is at most a 64th of the row (as PyTorch chooses between its two paths).
  const bool streaming = k * 64 <= C;
  cpu::parallel_for(l.outer * inner, cpu::grain_for(C), [&](int64_t b, int64_t e) {
    constexpr bool f32 = std::is_same<T, float>::value;
    std::vector<float> buf(f32 && inner == 1 ? 0 : C);
    std::vector<uint64_t> ranks(streaming ? k : C);
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / inner, j = r % inner;
      const T* src = x + o * C * inner + j;
      const float* row = buf.data();
      if (inner == 1) {
        row = load_row(src, C, buf.data());
      } else {
        for (int64_t c = 0; c < C; ++c) buf[c] = to_float(src[c * inner]);
      }
      if (streaming) (largest ? heap_select<true> : heap_select<false>)(row, C, k, ranks.data());
      else (largest ? full_select<true> : full_select<false>)(row, C, k, ranks.data());
      T* v = values + o * k * inner + j;
      int32_t* ix = indices + o * k * inner + j;
      for (int64_t t = 0; t < k; ++t) {
        const int32_t at = topk_index(ranks[t]);
        ix[t * inner] = at;
        v[t * inner] = src[(int64_t)at * inner];  // the stored element itself, NaN payloads included
      }
    }
  });
}

std::vector<Tensor> topk_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const TopkLayout l = topk_layout(x, attrs);
  const bool largest = attrs.flag("largest", true);
  Tensor values = empty(l.out_shape, x.dtype, x.device());
  Tensor indices = empty(l.out_shape, DType::Int32, x.device());
  if (values.numel() > 0) {
    KX_DISPATCH_FLOAT(x.dtype, topk_rows(x.data<scalar_t>(), values.data<scalar_t>(), indices.data<int32_t>(), l, largest));
  }
  return {values, indices};
}

// dx[.., indices[.., t, ..], ..] = dy[.., t, ..] along the axis; every other entry 0. A row's
// indices are distinct when they come from topk; were one repeated, its last dy would stay.
template <class T>
void scatter_rows(const int32_t* indices, const T* dy, T* dx, const TopkLayout& l) {
  const int64_t k = l.in_len, n = l.out_len, inner = l.inner;
  cpu::parallel_for(l.outer * inner, cpu::grain_for(k), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / inner, j = r % inner;
      const int32_t* at = indices + o * k * inner + j;
      const T* g = dy + o * k * inner + j;
      T* d = dx + o * n * inner + j;
      for (int64_t t = 0; t < k; ++t) d[(int64_t)at[t * inner] * inner] = g[t * inner];
    }
  });
}

std::vector<Tensor> topk_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &indices = in[0], &dy = in[1];
  const TopkLayout l = topk_backward_layout(indices, dy, attrs);
  const int32_t* at = indices.data<int32_t>();
  for (int64_t i = 0, n = indices.numel(); i < n; ++i) {
    if (at[i] < 0 || at[i] >= l.out_len) fail_bad_topk_index(at[i], i, l.out_len);
  }
  Tensor dx = zeros(l.out_shape, dy.dtype, dy.device());
  if (indices.numel() > 0) KX_DISPATCH_FLOAT(dy.dtype, scatter_rows(at, dy.data<scalar_t>(), dx.data<scalar_t>(), l));
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(topk, CPU, topk_cpu);
KX_REGISTER_KERNEL(topk_backward, CPU, topk_backward_cpu);

}  // namespace kx
