// NumPy broadcasting for CPU kernels with N inputs. The plan coalesces the output's dimensions
// into as few as possible, so the common cases collapse by themselves: equal shapes become one
// contiguous row; a scalar operand becomes a row with stride 0; a trailing-row broadcast ([N, D]
// with [D]) becomes rows of D where that operand restarts at 0. Kernels then see runs of
// contiguous output whose inputs each have stride 1 or 0, which they specialise and vectorise.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/broadcast.h"
#include "kx/tensor.h"

namespace kx::cpu {

template <int N>
class BroadcastPlan {
 public:
  // out must be the broadcast of the inputs' shapes (callers check with broadcasts_to first).
  BroadcastPlan(const Shape& out, const std::array<const Shape*, N>& ins) {
    numel_ = numel_of(out);
    CoalescedBroadcast<N> c = coalesce_broadcast<N>(out, ins);
    shape_ = std::move(c.dims);
    strides_ = std::move(c.strides);
    inner_ = shape_.back();
    inner_stride_ = strides_.back();
  }

  int64_t numel() const { return numel_; }
  int64_t inner() const { return inner_; }
  // Stride (0 or 1) of input k along the innermost coalesced dim.
  int64_t inner_stride(int k) const { return inner_stride_[k]; }
  // Number of coalesced dims (1 for the contiguous and scalar fast paths).
  int64_t rank() const { return (int64_t)shape_.size(); }

  // Calls fn(out_offset, in_offsets, n) for each run of output elements in [begin, end) that lies
  // within one innermost row: output elements out_offset .. out_offset + n, input k starting at
  // in_offsets[k] with stride inner_stride(k).
  template <class F>
  void for_range(int64_t begin, int64_t end, F&& fn) const {
    if (begin >= end) return;
    const int64_t outer_rank = (int64_t)shape_.size() - 1;
    int64_t row = begin / inner_;
    int64_t col = begin % inner_;
    // The multi-index of `row` over the outer dims, and each input's offset there.
    std::vector<int64_t> idx(outer_rank > 0 ? outer_rank : 1, 0);
    std::array<int64_t, N> off{};
    for (int64_t d = outer_rank - 1, r = row; d >= 0; --d) {
      idx[d] = r % shape_[d];
      r /= shape_[d];
      for (int k = 0; k < N; ++k) off[k] += idx[d] * strides_[d][k];
    }
    int64_t pos = begin;
    while (pos < end) {
      const int64_t n = (inner_ - col) < (end - pos) ? (inner_ - col) : (end - pos);
      std::array<int64_t, N> start;
      for (int k = 0; k < N; ++k) start[k] = off[k] + col * inner_stride_[k];
      fn(pos, start.data(), n);
      pos += n;
      col = 0;
      // Next row: increment the multi-index with carry, keeping the offsets in step.
      for (int64_t d = outer_rank - 1; d >= 0; --d) {
        for (int k = 0; k < N; ++k) off[k] += strides_[d][k];
        if (++idx[d] < shape_[d]) break;
        for (int k = 0; k < N; ++k) off[k] -= strides_[d][k] * shape_[d];
        idx[d] = 0;
      }
    }
  }

  // for_range over every output element, split across the thread pool in tasks of about `grain`.
  template <class F>
  void parallel_for_runs(int64_t grain, F&& fn) const {
    parallel_for(numel_, grain, [&](int64_t begin, int64_t end) { for_range(begin, end, fn); });
  }

 private:
  int64_t numel_ = 0;
  int64_t inner_ = 1;
  Shape shape_;
  std::vector<std::array<int64_t, N>> strides_;
  std::array<int64_t, N> inner_stride_{};
};

}  // namespace kx::cpu
