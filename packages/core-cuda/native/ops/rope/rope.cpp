// RoPE on the CPU. The cos/sin of every (position entry, pair) is computed once into a table, then
// the rows of x [..., T, D] are rotated in parallel, each row reading the table row of its position
// (positions broadcast against x's leading axes); channels past the rotary dim are copied.
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/rope/math.h"
#include "ops/rope/plan.h"

namespace kx {
namespace {

template <class T>
void rope_rows(const T* x, T* y, const float* cos_t, const float* sin_t, const RopePlan& plan) {
  const int64_t d = plan.d, half = plan.rotary / 2;
  const int64_t rank = (int64_t)plan.lead.size();
  cpu::parallel_for(plan.rows, cpu::grain_for(d * 2), [&](int64_t b, int64_t e) {
    const bool f32 = std::is_same<T, float>::value;
    std::vector<float> xbuf(f32 ? 0 : (size_t)d), ybuf(f32 ? 0 : (size_t)d);
    for (int64_t r = b; r < e; ++r) {
      // The table row of this row's position: r unravelled over the leading axes, dotted with the
      // positions' broadcast strides.
      int64_t entry = 0;
      for (int64_t k = rank - 1, rem = r; k >= 0; --k) {
        entry += (rem % plan.lead[k]) * plan.pstride[k];
        rem /= plan.lead[k];
      }
      const float* c = cos_t + entry * half;
      const float* s = sin_t + entry * half;
      const float* xr = load_row(x + r * d, d, xbuf.data());
      float* yr = out_row(y + r * d, ybuf.data());
      for (int64_t i = 0; i < half; ++i) {
        int64_t a, bb;
        rope_pair(i, half, plan.rotate_half, &a, &bb);
        rope_rotate_pair(xr[a], xr[bb], c[i], s[i], false, &yr[a], &yr[bb]);
      }
      for (int64_t j = plan.rotary; j < d; ++j) yr[j] = xr[j];
      narrow(yr, y + r * d, d);
    }
  });
}

std::vector<Tensor> rope_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &positions = in[1], &frequencies = in[2];
  const RopePlan plan = rope_plan(x, positions, frequencies, attrs);
  const int64_t entries = plan.entries, half = plan.rotary / 2;

  // The position of each entry: positions' own, or 0 .. T-1; the offset is added below.
  std::vector<int32_t> default_pos;
  const int32_t* pos = positions.defined() ? positions.data<int32_t>() : nullptr;
  if (!pos) {
    default_pos.resize((size_t)entries);
    for (int64_t i = 0; i < entries; ++i) default_pos[i] = (int32_t)i;
    pos = default_pos.data();
  }

  std::vector<float> theta((size_t)half);
  for (int64_t i = 0; i < half; ++i)
    theta[i] = frequencies.defined() ? frequencies.data<float>()[i] : rope_theta(i, plan.rotary, plan.base);
  // The inverse turns the other way: store −sin so the rotation loop has no branch.
  std::vector<float> cos_t((size_t)(entries * half)), sin_t((size_t)(entries * half));
  const float sign = plan.inverse ? -1.0f : 1.0f;
  cpu::parallel_for(entries, cpu::grain_for(half * 16), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const float a = rope_angle((int64_t)pos[p] + plan.offset, plan.scale, theta[i]);
        cos_t[p * half + i] = cosf(a);
        sin_t[p * half + i] = sign * sinf(a);
      }
  });

  Tensor y = empty(x.shape, x.dtype, x.device());
  if (plan.rows == 0 || plan.d == 0) return {y};
  KX_DISPATCH_FLOAT(x.dtype, rope_rows(x.data<scalar_t>(), y.data<scalar_t>(), cos_t.data(), sin_t.data(), plan));
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(rope, CPU, rope_cpu);

}  // namespace kx
