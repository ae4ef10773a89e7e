// The CPU driver of groups with a reduction (plan.h; FUSION.md rules 2 and 3): the prologue runs
// over the iteration space a block at a time and each block's values of the Reduce's register are
// reduced at once, so the product in sum(g·g) is never stored; then the epilogue runs over the
// reduced values.
//
// The partition is fixed by the shape alone, never by the thread count, so the bits do not depend
// on the number of threads: rows of at most kSumBlock elements are whole blocks of rows, longer
// rows are cut into chunks of kChunk elements (one task each). A row's sum is kx/reduce.h's order,
// the one the eager sum gives a row it does not split: lane sums of kSumBlock blocks combined
// pairwise (PairwiseSum). A chunk is a power-of-two number of blocks, so combining the chunk sums by
// the same counter (chunk_sum) builds exactly the row's own pairwise tree.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/simd.h"
#include "ops/fused_group/interpreter.h"

namespace kx {
namespace {

// Elements of a row one task reduces: 128 blocks of kSumBlock, a power of two.
constexpr int64_t kChunk = 1 << 15;
static_assert(kChunk % kGroupBlock == 0 && ((kChunk / kSumBlock) & (kChunk / kSumBlock - 1)) == 0,
              "a chunk is a power-of-two number of reduction blocks, and whole interpreter blocks");

// Accumulates n (≤ kGroupBlock) values that start a kSumBlock block of a row.
void accumulate(RedOp op, const float* x, int64_t n, PairwiseSum& sum, float& max) {
  for (int64_t i = 0; i < n; i += kSumBlock) {
    const int64_t len = std::min(kSumBlock, n - i);
    if (op == RedOp::Max) max = max_nan(max, simd::row_max(x + i, len));
    else sum.add(simd::block_sum(x + i, len));
  }
}

// A row's sum from its chunks' sums: the full chunks through the pairwise counter, then a partial
// last chunk's sum (its own result()) folded in first, as PairwiseSum::result() would fold that
// chunk's blocks when fed one at a time.
float chunk_sum(const float* chunks, int64_t count, bool last_partial) {
  PairwiseSum full;
  for (int64_t c = 0; c < count - (last_partial ? 1 : 0); ++c) full.add(chunks[c]);
  float s = last_partial ? chunks[count - 1] : 0.0f;
  for (int d = full.depth - 1; d >= 0; --d) s += full.stack[d];
  return s;
}

}  // namespace

void run_fused_reduction_cpu(GroupRun& run) {
  const GroupProgram& p = run.program();
  const GroupReduction& red = p.reduction;
  const int64_t outer = numel_of(red.shape), R = red.rows;
  if (outer == 0) return;
  const size_t at = (size_t)p.reduce_at;
  const int32_t src = p.code[at].a;
  const float identity = red.op == RedOp::Max ? -INFINITY : 0.0f;
  std::vector<float> reduced((size_t)outer, identity);
  if (R > 0 && R <= kSumBlock) {
    // Whole rows per block; a task is whole blocks of rows.
    const int64_t rows = std::max<int64_t>(1, kGroupBlock / R);
    const int64_t grain = (cpu::grain_for(R * (int64_t)(at + 1), 1 << 16) + rows - 1) / rows * rows;
    cpu::parallel_for(outer, grain, [&](int64_t begin, int64_t end) {
      GroupRegisters regs(p);
      for (int64_t r0 = begin; r0 < end; r0 += rows) {
        const int64_t k = std::min(rows, end - r0);
        run.run_block(GroupPart::Prologue, 0, at, r0 * R, k * R, regs, nullptr);
        const float* values = run.block_of(regs, src);
        for (int64_t i = 0; i < k; ++i) {
          PairwiseSum sum;
          float max = -INFINITY;
          accumulate(red.op, values + i * R, R, sum, max);
          reduced[(size_t)(r0 + i)] = red.op == RedOp::Max ? max : sum.result();
        }
      }
    });
  } else if (R > kSumBlock) {
    const int64_t chunks = (R + kChunk - 1) / kChunk;
    std::vector<float> partial((size_t)(outer * chunks));
    cpu::parallel_for(outer * chunks, 1, [&](int64_t begin, int64_t end) {
      GroupRegisters regs(p);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t row = t / chunks, c0 = (t % chunks) * kChunk, c1 = std::min(R, c0 + kChunk);
        PairwiseSum sum;
        float max = -INFINITY;
        for (int64_t o = c0; o < c1; o += kGroupBlock) {
          const int64_t n = std::min(kGroupBlock, c1 - o);
          run.run_block(GroupPart::Prologue, 0, at, row * R + o, n, regs, nullptr);
          accumulate(red.op, run.block_of(regs, src), n, sum, max);
        }
        partial[(size_t)t] = red.op == RedOp::Max ? max : sum.result();
      }
    });
    for (int64_t row = 0; row < outer; ++row) {
      const float* c = partial.data() + row * chunks;
      if (red.op == RedOp::Max) {
        for (int64_t k = 0; k < chunks; ++k) reduced[(size_t)row] = max_nan(reduced[(size_t)row], c[k]);
      } else {
        reduced[(size_t)row] = chunk_sum(c, chunks, R % kChunk != 0);
      }
    }
  }
  // (0/0 gives the mean of empty rows NaN, as the eager mean)
  if (red.mean)
    for (float& v : reduced) v /= (float)R;
  const int64_t grain = (cpu::grain_for((int64_t)(p.code.size() - at), 1 << 16) + kGroupBlock - 1) / kGroupBlock * kGroupBlock;
  cpu::parallel_for(outer, grain, [&](int64_t begin, int64_t end) {
    GroupRegisters regs(p);
    for (int64_t o = begin; o < end; o += kGroupBlock)
      run.run_block(GroupPart::Epilogue, at, p.code.size(), o, std::min(kGroupBlock, end - o), regs, reduced.data());
  });
}

}  // namespace kx
