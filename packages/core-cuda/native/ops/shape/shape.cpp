// Shape ops on the CPU: reshape (a view), permute, slice and its backward, concat.
//
// The copies are dtype-blind: they move elements of 1, 2 or 4 bytes, so one kernel serves every
// dtype. Axes are first simplified (size-1 axes dropped, axes that stay adjacent merged) so that
// most permutes become a run of row copies or one batched 2-D transpose.
#include <algorithm>
#include <cstring>

#include "cpu/thread_pool.h"
#include "kx/registry.h"
#include "ops/shape/plan.h"

namespace kx {
namespace {

// Offset (in elements) of the `index`-th point of an odometer over `dims`, under `strides`.
int64_t offset_of(int64_t index, const Shape& dims, const Shape& strides) {
  int64_t off = 0;
  for (int64_t a = (int64_t)dims.size() - 1; a >= 0; --a) {
    off += (index % dims[a]) * strides[a];
    index /= dims[a];
  }
  return off;
}

// An odometer over `dims` from point `start` on, keeping the offset under `strides` current, so a
// loop over rows pays one division per axis once, not per row.
struct Walker {
  const Shape& dims;
  const Shape& strides;
  Shape idx;
  int64_t offset;
  Walker(const Shape& d, const Shape& s, int64_t start) : dims(d), strides(s), idx(d.size()), offset(0) {
    for (int64_t a = (int64_t)d.size() - 1; a >= 0; --a) {
      idx[a] = start % d[a];
      offset += idx[a] * s[a];
      start /= d[a];
    }
  }
  void next() {
    for (int64_t a = (int64_t)dims.size() - 1; a >= 0; --a) {
      offset += strides[a];
      if (++idx[a] < dims[a]) return;
      offset -= strides[a] * dims[a];
      idx[a] = 0;
    }
  }
};

std::vector<Tensor> reshape_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Shape shape = reshape_shape(x, attrs);
  return {view(x, shape)};
}

// --- permute ----------------------------------------------------------------------------------

// The last input axis stays last: each output row is a contiguous input row.
template <class T>
void permute_rows(const T* src, T* dst, const SimplePerm& s) {
  const int64_t r = (int64_t)s.dims.size();
  const int64_t len = s.dims[r - 1];
  const Shape in_strides = row_major_strides(s.dims);
  Shape outer_dims, outer_strides;  // output axes but the last, with their input strides
  for (int64_t o = 0; o < r - 1; ++o) {
    outer_dims.push_back(s.dims[s.perm[o]]);
    outer_strides.push_back(in_strides[s.perm[o]]);
  }
  const int64_t rows = numel_of(outer_dims);
  cpu::parallel_for(rows, cpu::grain_for(len), [&](int64_t b, int64_t e) {
    Walker w(outer_dims, outer_strides, b);
    for (int64_t row = b; row < e; ++row, w.next()) {
      std::memcpy(dst + row * len, src + w.offset, (size_t)len * sizeof(T));
    }
  });
}

// The general case, a batched 2-D transpose: the input's last axis (stride 1 in the input) becomes
// output axis `oi`, and output's last axis (stride 1 in the output) comes from input axis perm[r-1].
// Copied in square tiles so that both the reads and the writes stay in cache lines.
template <class T>
void permute_tiled(const T* src, T* dst, const SimplePerm& s) {
  constexpr int64_t kTile = 32;
  const int64_t r = (int64_t)s.dims.size();
  const Shape in_strides = row_major_strides(s.dims);
  Shape out_dims(r);
  for (int64_t o = 0; o < r; ++o) out_dims[o] = s.dims[s.perm[o]];
  const Shape out_strides = row_major_strides(out_dims);
  int64_t oi = 0;
  while (s.perm[oi] != r - 1) ++oi;
  const int64_t ni = s.dims[r - 1], nj = out_dims[r - 1];
  const int64_t src_j = in_strides[s.perm[r - 1]], dst_i = out_strides[oi];
  Shape outer_dims, outer_in, outer_out;  // every other output axis
  for (int64_t o = 0; o < r - 1; ++o) {
    if (o == oi) continue;
    outer_dims.push_back(out_dims[o]);
    outer_in.push_back(in_strides[s.perm[o]]);
    outer_out.push_back(out_strides[o]);
  }
  const int64_t tiles_i = (ni + kTile - 1) / kTile;
  const int64_t items = numel_of(outer_dims) * tiles_i;  // one item: a strip of kTile i's, all j's
  cpu::parallel_for(items, cpu::grain_for(kTile * nj), [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t outer = item / tiles_i, i0 = (item % tiles_i) * kTile, i1 = std::min(ni, i0 + kTile);
      const T* s0 = src + offset_of(outer, outer_dims, outer_in);
      T* d0 = dst + offset_of(outer, outer_dims, outer_out);
      for (int64_t j0 = 0; j0 < nj; j0 += kTile) {
        const int64_t j1 = std::min(nj, j0 + kTile);
        for (int64_t i = i0; i < i1; ++i) {
          T* drow = d0 + i * dst_i;
          for (int64_t j = j0; j < j1; ++j) drow[j] = s0[j * src_j + i];
        }
      }
    }
  });
}

std::vector<Tensor> permute_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const std::vector<int64_t> perm = attrs.ints("perm");
  const Shape out_shape = permute_out_shape(x, perm);
  Tensor y = empty(out_shape, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  const SimplePerm s = simplify(x.shape, perm);
  with_element_type(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    if (s.dims.size() <= 1) std::memcpy(dst, src, x.nbytes());  // the order of elements is unchanged
    else if (s.perm.back() == (int64_t)s.dims.size() - 1) permute_rows(src, dst, s);
    else permute_tiled(src, dst, s);
  });
  return {y};
}

// --- slice and its backward -------------------------------------------------------------------

// Copies between a tensor of shape `full` and the box of it at `begin` with shape `box`: out of the
// full tensor (extract) or into it (insert). Trailing axes the box spans whole are merged into its
// rows, so each row is one memcpy.
template <class T>
void box_copy(const T* src, T* dst, const Shape& full, const Shape& begin, const Shape& box, bool extract) {
  int64_t r = (int64_t)full.size();
  int64_t inner = 1;
  while (r > 0 && begin[r - 1] == 0 && box[r - 1] == full[r - 1]) inner *= full[--r];
  if (r == 0) {  // the box is the whole tensor
    std::memcpy(dst, src, (size_t)inner * sizeof(T));
    return;
  }
  const int64_t row_len = box[r - 1] * inner;
  const Shape full_strides = row_major_strides(Shape(full.begin(), full.begin() + r));
  Shape outer_dims(box.begin(), box.begin() + r - 1), outer_strides(full_strides.begin(), full_strides.end() - 1);
  int64_t start = begin[r - 1] * inner;
  for (int64_t a = 0; a < r - 1; ++a) start += begin[a] * full_strides[a] * inner;
  for (auto& st : outer_strides) st *= inner;
  const int64_t rows = numel_of(outer_dims);
  cpu::parallel_for(rows, cpu::grain_for(row_len), [&](int64_t b, int64_t e) {
    Walker w(outer_dims, outer_strides, b);
    for (int64_t row = b; row < e; ++row, w.next()) {
      const int64_t full_off = start + w.offset;
      if (extract) std::memcpy(dst + row * row_len, src + full_off, (size_t)row_len * sizeof(T));
      else std::memcpy(dst + full_off, src + row * row_len, (size_t)row_len * sizeof(T));
    }
  });
}

std::vector<Tensor> slice_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Shape begin = attrs.ints("begin");
  const Shape size = resolve_box("slice", x.shape, begin, attrs.ints("size"));
  Tensor y = empty(size, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  with_element_type(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    box_copy(x.data<T>(), y.data<T>(), x.shape, begin, size, true);
  });
  return {y};
}

std::vector<Tensor> slice_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& dy = in[0];
  const Shape shape = slice_backward_shape(dy, attrs);
  const Shape begin = attrs.ints("begin");
  const Shape& box = dy.shape;
  Tensor dx = zeros(shape, dy.dtype, dy.device());
  if (dy.numel() == 0) return {dx};
  with_element_type(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    box_copy(dy.data<T>(), dx.data<T>(), shape, begin, box, false);
  });
  return {dx};
}

// --- concat -------------------------------------------------------------------------------------

std::vector<Tensor> concat_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& first = in[0];
  const ConcatPlan plan = concat_plan(in, attrs);
  Tensor y = empty(plan.out_shape, first.dtype, first.device());
  if (y.numel() == 0) return {y};
  const int64_t outer = plan.outer, out_row = plan.out_row, n_in = (int64_t)in.size();
  const std::vector<int64_t>& chunk = plan.chunk;
  const std::vector<int64_t>& at = plan.at;
  with_element_type(first.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* dst = y.data<T>();
    // One item: one input's chunk at one outer index.
    cpu::parallel_for(outer * n_in, cpu::grain_for(std::max<int64_t>(1, out_row / n_in)), [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) {
        const int64_t o = item / n_in, i = item % n_in;
        if (chunk[i] == 0) continue;
        std::memcpy(dst + o * out_row + at[i], in[i].data<T>() + o * chunk[i], (size_t)chunk[i] * sizeof(T));
      }
    });
  });
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(reshape, CPU, reshape_cpu);
KX_REGISTER_KERNEL(permute, CPU, permute_cpu);
KX_REGISTER_KERNEL(slice, CPU, slice_cpu);
KX_REGISTER_KERNEL(slice_backward, CPU, slice_backward_cpu);
KX_REGISTER_KERNEL(concat, CPU, concat_cpu);

}  // namespace kx
