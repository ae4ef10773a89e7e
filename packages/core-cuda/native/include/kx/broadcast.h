// NumPy broadcasting shared by the backends: the broadcast of two shapes (what the plans check), and
// broadcast indexing as a plain value that kernels take by value: the output's dimensions,
// coalesced (size-1 dims dropped, neighbours merged where every input steps through them as one),
// with each input's element stride along them (0 where it broadcasts). offsets() maps an output
// element's linear index to the inputs' offsets, the same on host and device. Coalescing makes
// equal shapes one dim of stride 1 and a scalar operand one of stride 0.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "kx/error.h"
#include "kx/math.h"
#include "kx/tensor.h"

namespace kx {

// Coalesced dims a broadcast (or gather) index can carry as a kernel argument.
constexpr int kMaxIndexDims = 16;

template <int N>
struct BroadcastIndex {
  int rank = 0;
  int64_t dims[kMaxIndexDims];
  int64_t strides[kMaxIndexDims][N];

  // off[k] = offset in input k of output element `index` (I: int32_t when everything fits).
  template <class I>
  KX_HD void offsets(I index, I* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const I size = (I)dims[d];
      const I c = index % size;
      index /= size;
      for (int k = 0; k < N; ++k) off[k] += c * (I)strides[d][k];
    }
  }
  // Whether the plan is one run with every input at stride 0 or 1 (the vectorisable case).
  bool contiguous() const { return rank == 1; }
};

// The NumPy broadcast of two shapes; false when they do not broadcast.
inline bool broadcast_shapes(const Shape& a, const Shape& b, Shape* out) {
  const size_t rank = a.size() > b.size() ? a.size() : b.size();
  Shape r(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    const int64_t db = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    if (da != db && da != 1 && db != 1) return false;
    r[i] = da == 1 ? db : da;
  }
  *out = r;
  return true;
}

// Whether x broadcasts to target without changing target (x's rank <= target's, each of x's
// trailing dims equal to target's or 1).
inline bool broadcasts_to(const Shape& x, const Shape& target) {
  if (x.size() > target.size()) return false;
  const size_t off = target.size() - x.size();
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != 1 && x[i] != target[off + i]) return false;
  return true;
}

// The output's dims coalesced for N inputs, outermost first, with each input's element stride along
// each (0 where it broadcasts): size-1 dims dropped, then an outer dim merged into its inner
// neighbour whenever every input steps through both as one (stride_outer == stride_inner *
// size_inner, true for 0 == 0). A scalar output, or one of all-1 dims, is one dim of 1.
template <int N>
struct CoalescedBroadcast {
  Shape dims;
  std::vector<std::array<int64_t, N>> strides;
};

template <int N>
CoalescedBroadcast<N> coalesce_broadcast(const Shape& out, const std::array<const Shape*, N>& ins) {
  const size_t rank = out.size();
  std::vector<std::array<int64_t, N>> strides(rank);
  for (int k = 0; k < N; ++k) {
    const Shape& s = *ins[k];
    int64_t stride = 1;
    for (size_t i = rank; i-- > 0;) {
      const size_t off = rank - s.size();
      const int64_t d = i >= off ? s[i - off] : 1;
      strides[i][k] = (d == 1) ? 0 : stride;
      stride *= d;
    }
  }
  CoalescedBroadcast<N> c;
  for (size_t i = 0; i < rank; ++i) {
    if (out[i] == 1) continue;
    if (!c.dims.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k) merge = merge && c.strides.back()[k] == strides[i][k] * out[i];
      if (merge) {
        c.dims.back() *= out[i];
        c.strides.back() = strides[i];
        continue;
      }
    }
    c.dims.push_back(out[i]);
    c.strides.push_back(strides[i]);
  }
  if (c.dims.empty()) {
    c.dims.push_back(1);
    c.strides.push_back({});
    c.strides.back().fill(0);
  }
  return c;
}

// The index of `out` (the broadcast of the inputs' shapes, checked by the caller). E_SHAPE when the
// coalesced rank exceeds kMaxIndexDims.
template <int N>
BroadcastIndex<N> broadcast_index(const Shape& out, const std::array<const Shape*, N>& ins, const char* op) {
  const CoalescedBroadcast<N> c = coalesce_broadcast<N>(out, ins);
  KX_CHECK(c.dims.size() <= (size_t)kMaxIndexDims, Shape, op, ": ", shape_str(out), " needs more than ",
           kMaxIndexDims, " broadcast dims on CUDA");
  BroadcastIndex<N> b;
  b.rank = (int)c.dims.size();
  for (int d = 0; d < b.rank; ++d) {
    b.dims[d] = c.dims[d];
    for (int k = 0; k < N; ++k) b.strides[d][k] = c.strides[d][k];
  }
  return b;
}

// The index of a strided walk over `dims` (one input, strides in elements): a box of a larger
// tensor, or a permuted read. Size-1 dims are dropped and a dim merged into its inner neighbour
// when the walk steps through both as one. E_SHAPE beyond kMaxIndexDims coalesced dims.
inline BroadcastIndex<1> strided_index(const Shape& dims, const Shape& strides, const char* op) {
  BroadcastIndex<1> b;
  int r = 0;
  for (size_t a = 0; a < dims.size(); ++a) {
    if (dims[a] == 1) continue;
    if (r > 0 && b.strides[r - 1][0] == strides[a] * dims[a]) {
      b.dims[r - 1] *= dims[a];
      b.strides[r - 1][0] = strides[a];
      continue;
    }
    KX_CHECK(r < kMaxIndexDims, Shape, op, ": ", shape_str(dims), " needs more than ", kMaxIndexDims,
             " strided dims on CUDA");
    b.dims[r] = dims[a];
    b.strides[r][0] = strides[a];
    ++r;
  }
  if (r == 0) {
    b.dims[0] = 1;
    b.strides[0][0] = 0;
    r = 1;
  }
  b.rank = r;
  return b;
}

}  // namespace kx
