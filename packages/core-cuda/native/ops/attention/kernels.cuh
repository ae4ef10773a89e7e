// The flash-style attention kernels and their launchers, free of the addon's runtime so that the
// kernel lab (dev/kernels/attention.cu) runs exactly what the addon runs; attention.cu validates,
// allocates and checks errors around them. SIMT kernels with float32 arithmetic for every storage
// dtype and shape, and tensor-core ones (forward and backward) for float16 / bfloat16 at head dims
// 64 and 128, taken when a call allows them (see "tensor cores" below).
//
// SIMT forward: one block per (b, h, 64 query rows, 64 output columns); it walks the visible key tiles,
// computing a 64 x 64 score tile in registers (q . k staged through shared memory in 64-wide
// chunks of the head dim), the online softmax per row (row max and sum across the 16 threads that
// hold a row), and acc += P V. Head dims wider than 64 run one block per 64 output columns
// (grid y), each recomputing the scores; so any D and Dv work with the same shared memory.
//
// Backward (FlashAttention-2 style, deterministic, no atomics): rowd_i = dout_i . out_i first; then
// one kernel per (b, h, query tile) recomputes P from the saved logsumexp and dS = P (dP - rowd)
// over the key tiles, accumulating dq = scale dS k (and writing dbias), and one kernel per
// (b, h, key tile) walks the query tiles that see it, accumulating dv = Pᵀ dout and
// dk = scale dSᵀ q. dbias: a bias without broadcast axes is written in place; a broadcast one
// (e.g. a T5 bias [1, H, Tq, Tk] or [H, Tq, Tk]) gets dS in a float32 [B, H, Tq, Tk] buffer summed
// over the broadcast axes afterwards, in a fixed order.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/mma.cuh"
#include "cuda/runtime.h"
#include "cuda/simt_tile.cuh"
#include "ops/attention/math.h"
#include "ops/attention/plan.h"

namespace kx::cuda::flash {

// The device-side view of one call's inputs.
struct AttnArgs {
  AttnShape s;
  const void *q, *k, *v;
  DType dt;  // of q, k, v
  const uint8_t* mask;
  const void* bias;
  DType bias_dt;

  __device__ MatrixRef q_head(int64_t bh) const { return {q, dt, bh * s.Tq * s.D, s.Tq, s.D, s.D}; }
  // k and v rows at or past key_limit read as zero (keys no row of the tile may see).
  __device__ MatrixRef k_head(int64_t bh, int64_t key_limit) const {
    return {k, dt, bh * s.Tk * s.D, key_limit, s.D, s.D};
  }
  __device__ MatrixRef v_head(int64_t bh, int64_t key_limit) const {
    return {v, dt, bh * s.Tk * s.Dv, key_limit, s.Dv, s.Dv};
  }

  // The score of query row i and key j from their product q_i . k_j: scaled, biased and masked
  // (ops/attention/math.h's attn_score); -inf outside [0, Tq) x [0, key_limit).
  __device__ float score(int64_t b, int64_t h, int64_t i, int64_t j, int64_t key_limit, float dot) const {
    const bool keep = i < s.Tq && j < key_limit && (!mask || mask[s.ms.offset(b, h, i) + j * s.ms.sk] != 0) &&
                      (!s.causal || attn_causal_visible(i, j, s.offset));
    const float b_ij = keep && bias ? load_float(bias, bias_dt, s.bs.offset(b, h, i) + j * s.bs.sk) : 0.0f;
    return attn_score(s.scale * dot, b_ij, keep);
  }
};

// What the backward kernels read and write besides q, k, v and the gradients of q, k, v.
struct BackwardArgs {
  const void* dout;
  DType dout_dt;
  const void* out;
  DType out_dt;
  const float* lse;
  float* rowd;        // scratch [B, H, Tq]: dout_i . out_i
  // The bias's gradient: in its dtype for a bias without broadcast axes, else a float32
  // [B, H, Tq, Tk] buffer for the reduction (at most one of them is set). Only entries that some
  // query row sees are written: under causal the caller zero-fills first.
  void* dbias;
  float* dbias_full;

  __device__ MatrixRef dout_head(const AttnShape& s, int64_t bh) const {
    return {dout, dout_dt, bh * s.Tq * s.Dv, s.Tq, s.Dv, s.Dv};
  }
};

// P and dS = P (dP - rowd) of one entry, in place of its score and of dP = dout_i . v_j. Entries
// that are not live (outside the tile's range, or in a row with no visible key: lse = -inf) have
// neither probability nor gradient.
__device__ __forceinline__ void backward_entry(bool live, float row_lse, float row_d, float& score_to_p,
                                               float& dp_to_ds) {
  const float pr = live ? attn_prob(score_to_p, row_lse) : 0.0f;
  dp_to_ds = live ? attn_dscore(pr, dp_to_ds, row_d) : 0.0f;
  score_to_p = pr;
}

// dbias at (b, h, i, j), when a bias is given: dS is d(score) and the bias enters the score as is.
__device__ __forceinline__ void write_dbias(const AttnArgs& p, const BackwardArgs& g, int64_t b, int64_t h, int64_t i,
                                            int64_t j, float ds) {
  const AttnShape& s = p.s;
  if (g.dbias)
    store_float(g.dbias, p.bias_dt, s.bs.offset(b, h, i) + j * s.bs.sk, ds);
  else if (g.dbias_full)
    g.dbias_full[((b * s.H + h) * s.Tq + i) * s.Tk + j] = ds;
}

// The scores of query rows i0 + row(a) against keys j0 + col(b) (AttnArgs::score).
__device__ void score_tile(const AttnArgs& p, int64_t b, int64_t h, int64_t i0, int64_t j0, int64_t key_limit,
                           float (&sc)[kMicro][kMicro], float* a_tile, float* b_tile, Lane l) {
  const int64_t bh = b * p.s.H + h;
  float dot[kMicro][kMicro] = {};
  product_nt(dot, p.q_head(bh), i0, p.k_head(bh, key_limit), j0, p.s.D, a_tile, b_tile, l);
#pragma unroll
  for (int a = 0; a < kMicro; ++a)
#pragma unroll
    for (int c = 0; c < kMicro; ++c) sc[a][c] = p.score(b, h, i0 + l.row(a), j0 + l.col(c), key_limit, dot[a][c]);
}

// A block over query tiles of `rows` rows (blockIdx.x runs over B·H × q_tiles): its (batch, head),
// first query row, and the end of the keys any of its rows can see.
struct QueryBlock {
  int64_t bh, b, h, i0, key_limit;
};
__device__ __forceinline__ QueryBlock query_block(const AttnShape& s, int64_t q_tiles, int64_t rows) {
  const int64_t bh = blockIdx.x / q_tiles, i0 = (blockIdx.x % q_tiles) * rows;
  return {bh, bh / s.H, bh % s.H, i0, s.key_end(i0 + rows < s.Tq ? i0 + rows : s.Tq)};
}

// Number of 64-wide output column slabs for a head width (at least one, which also carries lse).
inline int64_t slabs(int64_t width) { return width > kTile ? (width + kTile - 1) / kTile : 1; }

__global__ void __launch_bounds__(kTileThreads)
    attention_forward_kernel(AttnArgs p, void* out, float* lse, int64_t q_tiles) {
  extern __shared__ float smem[];
  float* a_tile = smem;
  float* b_tile = a_tile + kTileFloats;
  float* p_tile = b_tile + kTileFloats;
  const AttnShape& s = p.s;
  const Lane l = tile_lane();
  const QueryBlock qb = query_block(s, q_tiles, kTile);
  const int64_t bh = qb.bh, b = qb.b, h = qb.h, i0 = qb.i0, key_limit = qb.key_limit;
  const int64_t col0 = (int64_t)blockIdx.y * kTile;

  float acc[kMicro][kMicro] = {};
  float m[kMicro], lsum[kMicro];
#pragma unroll
  for (int a = 0; a < kMicro; ++a) {
    m[a] = -INFINITY;
    lsum[a] = 0.0f;
  }
  for (int64_t j0 = 0; j0 < key_limit; j0 += kTile) {
    float sc[kMicro][kMicro];
    score_tile(p, b, h, i0, j0, key_limit, sc, a_tile, b_tile, l);
#pragma unroll
    for (int a = 0; a < kMicro; ++a) {
      float bmax = -INFINITY;
#pragma unroll
      for (int c = 0; c < kMicro; ++c) bmax = max_nan(bmax, sc[a][c]);
      const float m_new = max_nan(m[a], row_group_max_nan(bmax));
      const float corr = attn_rescale(m[a], m_new);
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < kMicro; ++c) {
        const float pr = attn_prob(sc[a][c], m_new);
        p_tile[l.row(a) * kLd + l.col(c)] = pr;
        sum += pr;
      }
      lsum[a] = lsum[a] * corr + row_group_sum(sum);
      m[a] = m_new;
#pragma unroll
      for (int c = 0; c < kMicro; ++c) acc[a][c] *= corr;
    }
    load_tile(b_tile, p.v_head(bh, key_limit), j0, col0);
    __syncthreads();
    tile_product<false, false>(acc, p_tile, b_tile, kTile, l);
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < kMicro; ++a) {
    const int64_t i = i0 + l.row(a);
    if (i >= s.Tq) continue;
    float row_lse;
    const float inv = attn_finish(m[a], lsum[a], &row_lse);
    if (blockIdx.y == 0 && l.tx == 0) lse[bh * s.Tq + i] = row_lse;
#pragma unroll
    for (int c = 0; c < kMicro; ++c) {
      const int64_t col = col0 + l.col(c);
      if (col < s.Dv) store_float(out, p.dt, (bh * s.Tq + i) * s.Dv + col, acc[a][c] * inv);
    }
  }
}

// rowd_i = dout_i . out_i (float32), one warp per row.
__global__ void attention_rowd_kernel(const void* dout, DType dout_dt, const void* out, DType out_dt, float* rowd,
                                      int64_t rows, int64_t width) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    float acc = 0.0f;
    for (int64_t e = lane; e < width; e += 32)
      acc += load_float(dout, dout_dt, r * width + e) * load_float(out, out_dt, r * width + e);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) rowd[r] = acc;
  }
}

// P and dS for a micro-tile whose scores are sc and dout . v products dp (in place, backward_entry).
__device__ void probabilities_and_dscores(const AttnShape& s, const BackwardArgs& g, int64_t bh, int64_t i0,
                                          int64_t j0, int64_t key_limit, float (&sc)[kMicro][kMicro],
                                          float (&dp)[kMicro][kMicro], Lane l) {
#pragma unroll
  for (int a = 0; a < kMicro; ++a) {
    const int64_t i = i0 + l.row(a);
    const float row_lse = i < s.Tq ? g.lse[bh * s.Tq + i] : -INFINITY;
    const float row_d = i < s.Tq ? g.rowd[bh * s.Tq + i] : 0.0f;
#pragma unroll
    for (int c = 0; c < kMicro; ++c) {
      backward_entry(row_lse != -INFINITY && j0 + l.col(c) < key_limit, row_lse, row_d, sc[a][c], dp[a][c]);
    }
  }
}

__global__ void __launch_bounds__(kTileThreads)
    attention_backward_dq_kernel(AttnArgs p, BackwardArgs g, void* dq, int64_t q_tiles) {
  extern __shared__ float smem[];
  float* a_tile = smem;
  float* b_tile = a_tile + kTileFloats;
  float* ds_tile = b_tile + kTileFloats;
  const AttnShape& s = p.s;
  const Lane l = tile_lane();
  const QueryBlock qb = query_block(s, q_tiles, kTile);
  const int64_t bh = qb.bh, b = qb.b, h = qb.h, i0 = qb.i0, key_limit = qb.key_limit;
  const int64_t col0 = (int64_t)blockIdx.y * kTile;
  const bool writes_dbias = blockIdx.y == 0;

  float acc[kMicro][kMicro] = {};
  for (int64_t j0 = 0; j0 < key_limit; j0 += kTile) {
    float sc[kMicro][kMicro], dp[kMicro][kMicro] = {};
    score_tile(p, b, h, i0, j0, key_limit, sc, a_tile, b_tile, l);
    product_nt(dp, g.dout_head(s, bh), i0, p.v_head(bh, key_limit), j0, s.Dv, a_tile, b_tile, l);
    probabilities_and_dscores(s, g, bh, i0, j0, key_limit, sc, dp, l);
#pragma unroll
    for (int a = 0; a < kMicro; ++a) {
      const int64_t i = i0 + l.row(a);
#pragma unroll
      for (int c = 0; c < kMicro; ++c) {
        const int64_t j = j0 + l.col(c);
        ds_tile[l.row(a) * kLd + l.col(c)] = dp[a][c];
        if (writes_dbias && i < s.Tq && j < key_limit) write_dbias(p, g, b, h, i, j, dp[a][c]);
      }
    }
    if (col0 < s.D) {
      load_tile(b_tile, p.k_head(bh, key_limit), j0, col0);
      __syncthreads();
      tile_product<false, false>(acc, ds_tile, b_tile, kTile, l);
    }
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < kMicro; ++a) {
    const int64_t i = i0 + l.row(a);
#pragma unroll
    for (int c = 0; c < kMicro; ++c) {
      const int64_t col = col0 + l.col(c);
      if (i < s.Tq && col < s.D) store_float(dq, p.dt, (bh * s.Tq + i) * s.D + col, s.scale * acc[a][c]);
    }
  }
}

__global__ void __launch_bounds__(kTileThreads)
    attention_backward_dkdv_kernel(AttnArgs p, BackwardArgs g, void* dk, void* dv, int64_t k_tiles) {
  extern __shared__ float smem[];
  float* a_tile = smem;
  float* b_tile = a_tile + kTileFloats;
  float* p_tile = b_tile + kTileFloats;
  float* ds_tile = p_tile + kTileFloats;
  const AttnShape& s = p.s;
  const Lane l = tile_lane();
  const int64_t bh = blockIdx.x / k_tiles, b = bh / s.H, h = bh % s.H;
  const int64_t j0 = (blockIdx.x % k_tiles) * kTile;
  const int64_t col0 = (int64_t)blockIdx.y * kTile;
  const bool want_dk = col0 < s.D, want_dv = col0 < s.Dv;

  float dk_acc[kMicro][kMicro] = {}, dv_acc[kMicro][kMicro] = {};
  for (int64_t i0 = s.visible_from(j0); i0 < s.Tq; i0 += kTile) {
    float sc[kMicro][kMicro], dp[kMicro][kMicro] = {};
    score_tile(p, b, h, i0, j0, s.Tk, sc, a_tile, b_tile, l);
    product_nt(dp, g.dout_head(s, bh), i0, p.v_head(bh, s.Tk), j0, s.Dv, a_tile, b_tile, l);
    probabilities_and_dscores(s, g, bh, i0, j0, s.Tk, sc, dp, l);
#pragma unroll
    for (int a = 0; a < kMicro; ++a)
#pragma unroll
      for (int c = 0; c < kMicro; ++c) {
        p_tile[l.row(a) * kLd + l.col(c)] = sc[a][c];
        ds_tile[l.row(a) * kLd + l.col(c)] = dp[a][c];
      }
    if (want_dv) load_tile(a_tile, g.dout_head(s, bh), i0, col0);
    if (want_dk) load_tile(b_tile, p.q_head(bh), i0, col0);
    __syncthreads();
    // The micro-tile rows are now keys: dv[j][e] += sum_i P[i][j] dout[i][e], likewise dk with dS and q.
    if (want_dv) tile_product<true, false>(dv_acc, p_tile, a_tile, kTile, l);
    if (want_dk) tile_product<true, false>(dk_acc, ds_tile, b_tile, kTile, l);
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < kMicro; ++a) {
    const int64_t j = j0 + l.row(a);
    if (j >= s.Tk) continue;
#pragma unroll
    for (int c = 0; c < kMicro; ++c) {
      const int64_t col = col0 + l.col(c);
      if (col < s.D) store_float(dk, p.dt, (bh * s.Tk + j) * s.D + col, s.scale * dk_acc[a][c]);
      if (col < s.Dv) store_float(dv, p.dt, (bh * s.Tk + j) * s.Dv + col, dv_acc[a][c]);
    }
  }
}

// dbias of a broadcast bias: each element sums dS over the [B, H, Tq, Tk] positions that read it,
// in a fixed order. dims are the bias's dims padded to rank 4.
struct BiasDims {
  int64_t d[4];
};

__global__ void attention_dbias_reduce_kernel(const float* full, AttnShape s, BiasDims bias, void* dbias, DType dt,
                                              int64_t n) {
  const int64_t extent[4] = {s.B, s.H, s.Tq, s.Tk};
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t lo[4], hi[4];
    int64_t rest = e;
    for (int a = 3; a >= 0; --a) {
      const int64_t coord = rest % bias.d[a];
      rest /= bias.d[a];
      lo[a] = bias.d[a] == 1 ? 0 : coord;
      hi[a] = bias.d[a] == 1 ? extent[a] : coord + 1;
    }
    float sum = 0.0f;
    for (int64_t bb = lo[0]; bb < hi[0]; ++bb)
      for (int64_t hh = lo[1]; hh < hi[1]; ++hh)
        for (int64_t i = lo[2]; i < hi[2]; ++i) {
          const float* row = full + ((bb * s.H + hh) * s.Tq + i) * s.Tk;
          for (int64_t j = lo[3]; j < hi[3]; ++j) sum += row[j];
        }
    store_float(dbias, dt, e, sum);
  }
}

// ---- tensor cores: float16 / bfloat16 storage, head dims 64 and 128 (sm_80+) -------------------
// Taken by the launchers when the call allows it (mma_fits); the same row math and results as the
// SIMT kernels, up to P and dS being rounded to the storage type before their products (as in
// FlashAttention). Blocks of 4 warps over 64 rows (query rows in the forward and dq kernels, keys in
// the dk/dv kernel), each warp owning 16. The warp's rows stay in registers as mma.sync m16n8k16
// A fragments; per 64-row tile of the other side, its rows are staged in shared memory as [row][d]
// (for products with the registers) and transposed as [d][row] (for products with the scores).
// A 16 x 64 block of scores is 8 accumulator fragments of 16 x 8: each thread holds rows g and
// g + 8 (g = lane / 4) at columns 8 nb + 2 t and + 1 (t = lane % 4), so a row lives in the 4
// threads of a quad, and the same registers repack as the A fragments of the next product.

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = 32 * kMmaWarps;
constexpr int kMmaRows = 16 * kMmaWarps;  // rows per block, and per staged tile
constexpr int kMmaTStride = kMmaRows + 8;  // halves per row of a transposed tile (padding: conflict-free pairs)

// Halves per row of a [64][kD] staged tile (padded like kMmaTStride).
template <int kD>
constexpr int kMmaStride = kD + 8;

// Two floats rounded to nearest even in T and packed, lo in the low half (the lower column).
template <class T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  uint32_t r;
  if constexpr (std::is_same<T, half_t>::value)
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  else
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// The 32-bit word holding elements (r, c) and (r, c + 1) of a shared [rows][stride] array of 16-bit values.
__device__ __forceinline__ uint32_t pair_at(const uint16_t* s, int stride, int r, int c) {
  return *reinterpret_cast<const uint32_t*>(s + r * stride + c);
}

// Copies rows [row0, row0 + 64) of a [rows][kD] matrix of 16-bit values into dst ([64][stride], or
// transposed to [kD][stride] when kTranspose), rows at or past `limit` as zeros; 16-byte loads.
// Consecutive threads take consecutive 16-byte pieces of a row, or, when transposing, the same piece
// of consecutive rows (so that their 2-byte stores land in distinct banks).
template <int kD, bool kTranspose>
__device__ void stage_rows(uint16_t* dst, int stride, const uint16_t* src, int64_t row0, int64_t limit) {
  constexpr int kVecs = kD / 8;
  for (int e = threadIdx.x; e < kMmaRows * kVecs; e += kMmaThreads) {
    const int r = kTranspose ? e % kMmaRows : e / kVecs;
    const int c = (kTranspose ? e / kMmaRows : e % kVecs) * 8;
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (row0 + r < limit) raw = *reinterpret_cast<const uint4*>(src + (row0 + r) * kD + c);
    if (kTranspose) {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(&raw);
#pragma unroll
      for (int v = 0; v < 8; ++v) dst[(c + v) * stride + r] = h[v];
    } else {
      *reinterpret_cast<uint4*>(dst + r * stride + c) = raw;
    }
  }
}

// The thread's place in its warp's fragments.
struct Quad {
  int g, t;   // lane / 4 and lane % 4
  int row;    // the first of the thread's two rows (row and row + 8) in the block's 64
};
__device__ inline Quad mma_quad() {
  const int lane = threadIdx.x % 32;
  return Quad{lane / 4, lane % 4, (int)(threadIdx.x / 32) * 16 + lane / 4};
}

// The warp's 16 rows of a staged [64][stride] tile as A fragments, one per 16 columns.
template <int kD>
__device__ void load_a_fragments(uint32_t (&f)[kD / 16][4], const uint16_t* tile, Quad q) {
  constexpr int kStride = kMmaStride<kD>;
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    f[kk][0] = pair_at(tile, kStride, q.row, kk * 16 + 2 * q.t);
    f[kk][1] = pair_at(tile, kStride, q.row + 8, kk * 16 + 2 * q.t);
    f[kk][2] = pair_at(tile, kStride, q.row, kk * 16 + 2 * q.t + 8);
    f[kk][3] = pair_at(tile, kStride, q.row + 8, kk * 16 + 2 * q.t + 8);
  }
}

// acc (16 x 64) += A (16 x kD, fragments) · Bᵀ for a staged [64][stride] tile B (its rows are the
// 64 output columns).
template <class T, int kD>
__device__ void mma_rows_by_tile(float (&acc)[8][4], const uint32_t (&a)[kD / 16][4], const uint16_t* b, Quad q) {
  constexpr int kStride = kMmaStride<kD>;
#pragma unroll
  for (int nb = 0; nb < 8; ++nb)
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk)
      mma_16816<T>(acc[nb], a[kk], pair_at(b, kStride, nb * 8 + q.g, kk * 16 + 2 * q.t),
                   pair_at(b, kStride, nb * 8 + q.g, kk * 16 + 2 * q.t + 8));
}

// acc (16 x kD) += P · B for P the 16 x 64 accumulators of mma_rows_by_tile (rounded to T) and B a
// 64 x kD tile staged transposed ([kD][kMmaTStride]).
template <class T, int kD>
__device__ void mma_scores_by_tile(float (&acc)[kD / 8][4], const float (&p)[8][4], const uint16_t* bt, Quad q) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const uint32_t pa[4] = {pack_pair<T>(p[2 * kk][0], p[2 * kk][1]), pack_pair<T>(p[2 * kk][2], p[2 * kk][3]),
                            pack_pair<T>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                            pack_pair<T>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int nd = 0; nd < kD / 8; ++nd)
      mma_16816<T>(acc[nd], pa, pair_at(bt, kMmaTStride, nd * 8 + q.g, kk * 16 + 2 * q.t),
                   pair_at(bt, kMmaTStride, nd * 8 + q.g, kk * 16 + 2 * q.t + 8));
  }
}

// Stores rows row0 + q.row (+ 8) of a 16 x kD accumulator block times mul into a [rows][kD] matrix.
template <class T, int kD>
__device__ void store_rows(void* dst, int64_t row0, int64_t rows, const float (&acc)[kD / 8][4], const float (&mul)[2],
                           Quad q) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t r = row0 + q.row + 8 * half;
    if (r >= rows) continue;
    T* out = static_cast<T*>(dst) + r * kD;
#pragma unroll
    for (int nd = 0; nd < kD / 8; ++nd) {
      out[nd * 8 + 2 * q.t] = from_float<T>(acc[nd][2 * half] * mul[half]);
      out[nd * 8 + 2 * q.t + 1] = from_float<T>(acc[nd][2 * half + 1] * mul[half]);
    }
  }
}

// Dynamic shared memory of the tensor-core kernels: `tiles` row tiles and `transposed` [kD] tiles.
template <int kD>
constexpr int mma_shared_bytes(int tiles, int transposed) {
  return (tiles * kMmaRows * kMmaStride<kD> + transposed * kD * kMmaTStride) * 2;
}

template <class T, int kD>
__global__ void __launch_bounds__(kMmaThreads)
    attention_forward_mma_kernel(AttnArgs p, void* out, float* lse, int64_t q_tiles) {
  extern __shared__ uint4 mma_smem[];
  uint16_t* k_s = reinterpret_cast<uint16_t*>(mma_smem);  // q first, then each key tile
  uint16_t* vt_s = k_s + kMmaRows * kMmaStride<kD>;
  const AttnShape& s = p.s;
  const Quad q = mma_quad();
  const QueryBlock qb = query_block(s, q_tiles, kMmaRows);
  const int64_t bh = qb.bh, b = qb.b, h = qb.h, i0 = qb.i0, key_limit = qb.key_limit;
  const uint16_t* k = static_cast<const uint16_t*>(p.k) + bh * s.Tk * kD;
  const uint16_t* v = static_cast<const uint16_t*>(p.v) + bh * s.Tk * kD;

  uint32_t qf[kD / 16][4];
  stage_rows<kD, false>(k_s, kMmaStride<kD>, static_cast<const uint16_t*>(p.q) + bh * s.Tq * kD, i0, s.Tq);
  __syncthreads();
  load_a_fragments<kD>(qf, k_s, q);
  __syncthreads();

  float o[kD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};
  for (int64_t j0 = 0; j0 < key_limit; j0 += kMmaRows) {
    stage_rows<kD, false>(k_s, kMmaStride<kD>, k, j0, key_limit);
    stage_rows<kD, true>(vt_s, kMmaTStride, v, j0, key_limit);
    __syncthreads();
    float sc[8][4] = {};
    mma_rows_by_tile<T, kD>(sc, qf, k_s, q);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t i = i0 + q.row + 8 * half;
      float bmax = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          sc[nb][e] = p.score(b, h, i, j0 + nb * 8 + 2 * q.t + e % 2, key_limit, sc[nb][e]);
          bmax = max_nan(bmax, sc[nb][e]);
        }
#pragma unroll
      for (int off = 1; off < 4; off *= 2) bmax = max_nan(bmax, __shfl_xor_sync(0xffffffffu, bmax, off));
      const float m_new = max_nan(m[half], bmax);
      const float corr = attn_rescale(m[half], m_new);
      float sum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          sc[nb][e] = attn_prob(sc[nb][e], m_new);
          sum += sc[nb][e];
        }
#pragma unroll
      for (int off = 1; off < 4; off *= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      lsum[half] = lsum[half] * corr + sum;
      m[half] = m_new;
#pragma unroll
      for (int nd = 0; nd < kD / 8; ++nd) {
        o[nd][2 * half] *= corr;
        o[nd][2 * half + 1] *= corr;
      }
    }
    mma_scores_by_tile<T, kD>(o, sc, vt_s, q);
    __syncthreads();
  }
  float inv[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t i = i0 + q.row + 8 * half;
    float row_lse;
    inv[half] = attn_finish(m[half], lsum[half], &row_lse);
    if (i < s.Tq && q.t == 0) lse[bh * s.Tq + i] = row_lse;
  }
  store_rows<T, kD>(static_cast<T*>(out) + bh * s.Tq * kD, i0, s.Tq, o, inv, q);
}

// dq (and dbias) for one (b, h, 64 query rows): S = q kᵀ and dP = dout vᵀ from registers, then
// dq += dS k with k staged transposed.
template <class T, int kD>
__global__ void __launch_bounds__(kMmaThreads)
    attention_backward_dq_mma_kernel(AttnArgs p, BackwardArgs g, void* dq, int64_t q_tiles) {
  extern __shared__ uint4 mma_smem[];
  uint16_t* k_s = reinterpret_cast<uint16_t*>(mma_smem);
  uint16_t* v_s = k_s + kMmaRows * kMmaStride<kD>;
  uint16_t* kt_s = v_s + kMmaRows * kMmaStride<kD>;
  const AttnShape& s = p.s;
  const Quad q = mma_quad();
  const QueryBlock qb = query_block(s, q_tiles, kMmaRows);
  const int64_t bh = qb.bh, b = qb.b, h = qb.h, i0 = qb.i0, key_limit = qb.key_limit;
  const uint16_t* k = static_cast<const uint16_t*>(p.k) + bh * s.Tk * kD;
  const uint16_t* v = static_cast<const uint16_t*>(p.v) + bh * s.Tk * kD;

  uint32_t qf[kD / 16][4], dof[kD / 16][4];
  stage_rows<kD, false>(k_s, kMmaStride<kD>, static_cast<const uint16_t*>(p.q) + bh * s.Tq * kD, i0, s.Tq);
  stage_rows<kD, false>(v_s, kMmaStride<kD>, static_cast<const uint16_t*>(g.dout) + bh * s.Tq * kD, i0, s.Tq);
  __syncthreads();
  load_a_fragments<kD>(qf, k_s, q);
  load_a_fragments<kD>(dof, v_s, q);
  __syncthreads();
  float row_lse[2], row_d[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t i = i0 + q.row + 8 * half;
    row_lse[half] = i < s.Tq ? g.lse[bh * s.Tq + i] : -INFINITY;
    row_d[half] = i < s.Tq ? g.rowd[bh * s.Tq + i] : 0.0f;
  }

  float acc[kD / 8][4] = {};
  for (int64_t j0 = 0; j0 < key_limit; j0 += kMmaRows) {
    stage_rows<kD, false>(k_s, kMmaStride<kD>, k, j0, key_limit);
    stage_rows<kD, false>(v_s, kMmaStride<kD>, v, j0, key_limit);
    stage_rows<kD, true>(kt_s, kMmaTStride, k, j0, key_limit);
    __syncthreads();
    float sc[8][4] = {}, dp[8][4] = {};
    mma_rows_by_tile<T, kD>(sc, qf, k_s, q);
    mma_rows_by_tile<T, kD>(dp, dof, v_s, q);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t i = i0 + q.row + 8 * (e / 2), j = j0 + nb * 8 + 2 * q.t + e % 2;
        const bool in_range = i < s.Tq && j < key_limit;
        sc[nb][e] = p.score(b, h, i, j, key_limit, sc[nb][e]);
        backward_entry(in_range && row_lse[e / 2] != -INFINITY, row_lse[e / 2], row_d[e / 2], sc[nb][e], dp[nb][e]);
        if (in_range) write_dbias(p, g, b, h, i, j, dp[nb][e]);
      }
    mma_scores_by_tile<T, kD>(acc, dp, kt_s, q);
    __syncthreads();
  }
  const float mul[2] = {s.scale, s.scale};
  store_rows<T, kD>(static_cast<T*>(dq) + bh * s.Tq * kD, i0, s.Tq, acc, mul, q);
}

// dk and dv for one (b, h, 64 keys), over the query tiles that see them: Sᵀ = k qᵀ and dPᵀ = v doutᵀ
// from registers, then dv += Pᵀ dout and dk += dSᵀ q with dout and q staged transposed.
template <class T, int kD>
__global__ void __launch_bounds__(kMmaThreads)
    attention_backward_dkdv_mma_kernel(AttnArgs p, BackwardArgs g, void* dk, void* dv, int64_t k_tiles) {
  extern __shared__ uint4 mma_smem[];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(mma_smem);
  uint16_t* do_s = q_s + kMmaRows * kMmaStride<kD>;
  uint16_t* qt_s = do_s + kMmaRows * kMmaStride<kD>;
  uint16_t* dot_s = qt_s + kD * kMmaTStride;
  const AttnShape& s = p.s;
  const Quad q = mma_quad();
  const int64_t bh = blockIdx.x / k_tiles, b = bh / s.H, h = bh % s.H;
  const int64_t j0 = (blockIdx.x % k_tiles) * kMmaRows;
  const uint16_t* qh = static_cast<const uint16_t*>(p.q) + bh * s.Tq * kD;
  const uint16_t* doh = static_cast<const uint16_t*>(g.dout) + bh * s.Tq * kD;

  uint32_t kf[kD / 16][4], vf[kD / 16][4];
  stage_rows<kD, false>(q_s, kMmaStride<kD>, static_cast<const uint16_t*>(p.k) + bh * s.Tk * kD, j0, s.Tk);
  stage_rows<kD, false>(do_s, kMmaStride<kD>, static_cast<const uint16_t*>(p.v) + bh * s.Tk * kD, j0, s.Tk);
  __syncthreads();
  load_a_fragments<kD>(kf, q_s, q);
  load_a_fragments<kD>(vf, do_s, q);
  __syncthreads();

  float dk_acc[kD / 8][4] = {}, dv_acc[kD / 8][4] = {};
  for (int64_t i0 = s.visible_from(j0); i0 < s.Tq; i0 += kMmaRows) {
    stage_rows<kD, false>(q_s, kMmaStride<kD>, qh, i0, s.Tq);
    stage_rows<kD, false>(do_s, kMmaStride<kD>, doh, i0, s.Tq);
    stage_rows<kD, true>(qt_s, kMmaTStride, qh, i0, s.Tq);
    stage_rows<kD, true>(dot_s, kMmaTStride, doh, i0, s.Tq);
    __syncthreads();
    float st[8][4] = {}, dpt[8][4] = {};  // rows: keys; columns: queries
    mma_rows_by_tile<T, kD>(st, kf, q_s, q);
    mma_rows_by_tile<T, kD>(dpt, vf, do_s, q);
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = j0 + q.row + 8 * (e / 2), i = i0 + nb * 8 + 2 * q.t + e % 2;
        const float row_lse = i < s.Tq ? g.lse[bh * s.Tq + i] : -INFINITY;
        const float row_d = i < s.Tq ? g.rowd[bh * s.Tq + i] : 0.0f;
        st[nb][e] = p.score(b, h, i, j, s.Tk, st[nb][e]);
        backward_entry(j < s.Tk && row_lse != -INFINITY, row_lse, row_d, st[nb][e], dpt[nb][e]);
      }
    mma_scores_by_tile<T, kD>(dv_acc, st, dot_s, q);
    mma_scores_by_tile<T, kD>(dk_acc, dpt, qt_s, q);
    __syncthreads();
  }
  const float dk_mul[2] = {s.scale, s.scale}, dv_mul[2] = {1.0f, 1.0f};
  store_rows<T, kD>(static_cast<T*>(dk) + bh * s.Tk * kD, j0, s.Tk, dk_acc, dk_mul, q);
  store_rows<T, kD>(static_cast<T*>(dv) + bh * s.Tk * kD, j0, s.Tk, dv_acc, dv_mul, q);
}

// Whether the tensor-core kernels take a call: half storage, D = Dv in {64, 128}, 16-byte aligned
// q, k, v (and dout, when given, of the same dtype).
inline bool mma_fits(const AttnArgs& p, const BackwardArgs* g = nullptr) {
  const AttnShape& s = p.s;
  return (p.dt == DType::Float16 || p.dt == DType::BFloat16) && s.D == s.Dv && (s.D == 64 || s.D == 128) &&
         aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && (!g || (g->dout_dt == p.dt && aligned16(g->dout)));
}

// Calls f(T{}, std::integral_constant<int, kD>{}) for the call's half type T and head dim kD.
template <class F>
void mma_dispatch(const AttnArgs& p, F&& f) {
  if (p.dt == DType::Float16) {
    if (p.s.D == 64) f(half_t{}, std::integral_constant<int, 64>{});
    else f(half_t{}, std::integral_constant<int, 128>{});
  } else {
    if (p.s.D == 64) f(bfloat16_t{}, std::integral_constant<int, 64>{});
    else f(bfloat16_t{}, std::integral_constant<int, 128>{});
  }
}

// The bias's dims padded to rank 4, and where its gradient goes, for the broadcast case.
struct DbiasReduce {
  BiasDims dims;
  void* dbias;
  DType dt;
  int64_t n;
};

// Which kernels a launcher runs: the fastest that take the call, or the SIMT ones (the lab's
// baseline).
enum class Version { Best, Simt };

inline void launch_attention_forward(const AttnArgs& p, void* out, float* lse, cudaStream_t stream,
                                     Version version = Version::Best) {
  const AttnShape& s = p.s;
  const int64_t q_tiles = tiles_of(s.Tq);
  if (s.B * s.H * q_tiles == 0) return;
  if (version == Version::Best && mma_fits(p)) {
    mma_dispatch(p, [&](auto type, auto dim) {
      using T = decltype(type);
      constexpr int kD = decltype(dim)::value;
      launch_with_shared(attention_forward_mma_kernel<T, kD>, dim3((unsigned)(s.B * s.H * q_tiles)), kMmaThreads,
                         mma_shared_bytes<kD>(1, 1), stream, p, out, lse, q_tiles);
    });
    return;
  }
  launch_tiled(attention_forward_kernel, 3, dim3((unsigned)(s.B * s.H * q_tiles), (unsigned)slabs(s.Dv)), stream, p,
               out, lse, q_tiles);
}

// reduce: null unless the bias is broadcast (then g.dbias_full is set).
inline void launch_attention_backward(const AttnArgs& p, const BackwardArgs& g, void* dq, void* dk, void* dv,
                                      const DbiasReduce* reduce, cudaStream_t stream,
                                      Version version = Version::Best) {
  const AttnShape& s = p.s;
  const int64_t rows = s.B * s.H * s.Tq;
  if (rows > 0) {
    attention_rowd_kernel<<<blocks_for(rows * 32, 256), 256, 0, stream>>>(g.dout, g.dout_dt, g.out, g.out_dt, g.rowd,
                                                                          rows, s.Dv);
  }
  const int64_t q_tiles = tiles_of(s.Tq), k_tiles = tiles_of(s.Tk);
  const dim3 dq_grid((unsigned)(s.B * s.H * q_tiles)), dkdv_grid((unsigned)(s.B * s.H * k_tiles));
  if (version == Version::Best && mma_fits(p, &g)) {
    mma_dispatch(p, [&](auto type, auto dim) {
      using T = decltype(type);
      constexpr int kD = decltype(dim)::value;
      if (q_tiles > 0 && s.B * s.H > 0)
        launch_with_shared(attention_backward_dq_mma_kernel<T, kD>, dq_grid, kMmaThreads, mma_shared_bytes<kD>(2, 1),
                           stream, p, g, dq, q_tiles);
      if (k_tiles > 0 && s.B * s.H > 0)
        launch_with_shared(attention_backward_dkdv_mma_kernel<T, kD>, dkdv_grid, kMmaThreads,
                           mma_shared_bytes<kD>(2, 2), stream, p, g, dk, dv, k_tiles);
    });
  } else {
    if (q_tiles > 0 && s.B * s.H > 0)
      launch_tiled(attention_backward_dq_kernel, 3, dim3(dq_grid.x, (unsigned)slabs(s.D)), stream, p, g, dq, q_tiles);
    if (k_tiles > 0 && s.B * s.H > 0) {
      const int64_t width = s.D > s.Dv ? s.D : s.Dv;
      launch_tiled(attention_backward_dkdv_kernel, 4, dim3(dkdv_grid.x, (unsigned)slabs(width)), stream, p, g, dk, dv,
                   k_tiles);
    }
  }
  if (reduce && reduce->n > 0) {
    attention_dbias_reduce_kernel<<<blocks_for(reduce->n, 256), 256, 0, stream>>>(g.dbias_full, s, reduce->dims,
                                                                                  reduce->dbias, reduce->dt, reduce->n);
  }
}

}  // namespace kx::cuda::flash
