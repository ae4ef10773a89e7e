// GlobalPointer scoring with masks and the multilabel categorical cross-entropies (dense and
// sparse) on CUDA, forward and backward, for every floating dtype with float32 arithmetic.
// Validation from ops/global_pointer/plan.h (shared with the CPU kernels), the math of one entry or
// row from ops/global_pointer/math.h. Every reduction has a fixed order, so results are
// deterministic.
//
// global_pointer: one block per (b, g, 64 x 64 tile of spans) computes the dot products once
// (cuda/simt_tile.cuh) and writes the scores of every head of the group. Tiles wholly below the
// diagonal under tril are -inf without a product. global_pointer_backward: with D the masked
// upstream gradient summed over the group's heads, dq = scale D k per (b, g, query tile) and dk =
// scale Dᵀ q per (b, g, key tile) as tiled products whose D tiles are formed on load (no [n, n]
// buffer); dstart / dend are D's row / column sums per head. multilabel losses: one block per row;
// per-thread logsumexp states merged across the block.
#include "cuda/runtime.h"
#include "cuda/simt_tile.cuh"
#include "kx/registry.h"
#include "ops/global_pointer/math.h"
#include "ops/global_pointer/plan.h"

namespace kx {
namespace {

using cuda::kMicro;
using cuda::kTile;
using cuda::kTileFloats;
using cuda::kTileThreads;
using cuda::Lane;
using cuda::MatrixRef;

// The device-side view of a GlobalPointer call; q, k, start, end, dy share dtype dt.
struct GpArgs {
  GpDims g;
  const void *q, *k;
  DType dt;
  const uint8_t* mask;
  const void *start, *end;
  float scale;
  bool tril;

  __device__ MatrixRef head(const void* t, int64_t bg) const { return {t, dt, bg * g.n * g.d, g.n, g.d, g.d}; }
  __device__ bool real(int64_t b, int64_t i) const { return !mask || mask[b * g.n + i] != 0; }
  __device__ bool keep(int64_t b, int64_t i, int64_t j) const {
    return i < g.n && j < g.n && gp_keep(real(b, i), real(b, j), i, j, tril);
  }
};

GpArgs gp_args(const GpDims& g, const Inputs& in, const Attrs& attrs) {
  const Tensor &mask = in[2], &start = in[3];
  return GpArgs{g,
                in[0].raw(),
                in[1].raw(),
                in[0].dtype,
                mask.defined() ? mask.data<uint8_t>() : nullptr,
                start.defined() ? start.raw() : nullptr,
                start.defined() ? in[4].raw() : nullptr,
                gp_scale(attrs, g),
                gp_tril(attrs)};
}

__global__ void __launch_bounds__(kTileThreads) global_pointer_kernel(GpArgs p, void* out, int64_t tiles) {
  extern __shared__ float smem[];
  float* a_tile = smem;
  float* b_tile = a_tile + kTileFloats;
  const GpDims& g = p.g;
  const Lane l = cuda::tile_lane();
  const int64_t bg = blockIdx.x / (tiles * tiles), t = blockIdx.x % (tiles * tiles);
  const int64_t b = bg / g.G, grp = bg % g.G;
  const int64_t i0 = (t / tiles) * kTile, j0 = (t % tiles) * kTile;
  float dot[kMicro][kMicro] = {};
  if (!(p.tril && j0 + kTile <= i0))
    cuda::product_nt(dot, p.head(p.q, bg), i0, p.head(p.k, bg), j0, g.d, a_tile, b_tile, l);
  int64_t h0, h1;
  group_heads(g, grp, &h0, &h1);
  for (int64_t h = h0; h < h1; ++h) {
    const int64_t bh = b * g.H + h;
#pragma unroll
    for (int a = 0; a < kMicro; ++a) {
      const int64_t i = i0 + l.row(a);
      if (i >= g.n) continue;
      const float start_i = p.start ? cuda::load_float(p.start, p.dt, bh * g.n + i) : 0.0f;
#pragma unroll
      for (int c = 0; c < kMicro; ++c) {
        const int64_t j = j0 + l.col(c);
        if (j >= g.n) continue;
        const float end_j = p.end ? cuda::load_float(p.end, p.dt, bh * g.n + j) : 0.0f;
        const float score = gp_score(p.keep(b, i, j), dot[a][c], p.scale, start_i, end_j);
        cuda::store_float(out, p.dt, (bh * g.n + i) * g.n + j, score);
      }
    }
  }
}

// Fills dst with D[i0 + r][j0 + c]: dy summed over the group's heads where the span is kept, else 0
// (select, not multiply: dy at a masked entry may be anything). Heads are added in order, as on the CPU.
__device__ void load_masked_dy_tile(float* dst, const GpArgs& p, const void* dy, int64_t b, int64_t grp, int64_t i0,
                                    int64_t j0) {
  const GpDims& g = p.g;
  int64_t h0, h1;
  group_heads(g, grp, &h0, &h1);
  for (int e = threadIdx.x; e < kTile * kTile; e += kTileThreads) {
    const int r = e / kTile, c = e % kTile;
    const int64_t i = i0 + r, j = j0 + c;
    float v = 0.0f;
    if (p.keep(b, i, j))
      for (int64_t h = h0; h < h1; ++h) v += cuda::load_float(dy, p.dt, ((b * g.H + h) * g.n + i) * g.n + j);
    dst[r * cuda::kLd + c] = v;
  }
}

// dq (kTransposed = false: rows are queries i, summing over keys j) or dk (true: rows are keys j,
// summing over queries i) for one (b, g, 64 rows, 64 columns of d).
template <bool kTransposed>
__global__ void __launch_bounds__(kTileThreads)
    global_pointer_backward_qk_kernel(GpArgs p, const void* dy, void* grad, int64_t tiles) {
  extern __shared__ float smem[];
  float* d_tile = smem;
  float* x_tile = d_tile + kTileFloats;
  const GpDims& g = p.g;
  const Lane l = cuda::tile_lane();
  const int64_t bg = blockIdx.x / tiles, b = bg / g.G, grp = bg % g.G;
  const int64_t r0 = (blockIdx.x % tiles) * kTile;
  const int64_t col0 = (int64_t)blockIdx.y * kTile;
  // The other operand: k for dq, q for dk. Under tril only j >= i contributes.
  const MatrixRef other = p.head(kTransposed ? p.q : p.k, bg);
  const int64_t from = kTransposed || !p.tril ? 0 : r0;
  const int64_t to = kTransposed && p.tril ? (r0 + kTile < g.n ? r0 + kTile : g.n) : g.n;
  float acc[kMicro][kMicro] = {};
  for (int64_t s0 = from; s0 < to; s0 += kTile) {
    if (kTransposed)
      load_masked_dy_tile(d_tile, p, dy, b, grp, s0, r0);
    else
      load_masked_dy_tile(d_tile, p, dy, b, grp, r0, s0);
    cuda::load_tile(x_tile, other, s0, col0);
    __syncthreads();
    cuda::tile_product<kTransposed, false>(acc, d_tile, x_tile, kTile, l);
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < kMicro; ++a) {
    const int64_t r = r0 + l.row(a);
#pragma unroll
    for (int c = 0; c < kMicro; ++c) {
      const int64_t col = col0 + l.col(c);
      if (r < g.n && col < g.d) cuda::store_float(grad, p.dt, (bg * g.n + r) * g.d + col, p.scale * acc[a][c]);
    }
  }
}

// dstart[b, h, i] = sum_j of the masked dy[b, h, i, j], one warp per row.
__global__ void global_pointer_dstart_kernel(GpArgs p, const void* dy, void* dstart) {
  const GpDims& g = p.g;
  const int lane = threadIdx.x % 32;
  const int64_t rows = g.B * g.H * g.n, warps = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    const int64_t i = r % g.n, b = r / (g.H * g.n);
    float sum = 0.0f;
    for (int64_t j = lane; j < g.n; j += 32)
      if (p.keep(b, i, j)) sum += cuda::load_float(dy, p.dt, r * g.n + j);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) cuda::store_float(dstart, p.dt, r, sum);
  }
}

// dend[b, h, j] = sum_i of the masked dy[b, h, i, j], one thread per column, rows in order.
__global__ void global_pointer_dend_kernel(GpArgs p, const void* dy, void* dend) {
  const GpDims& g = p.g;
  const int64_t cols = g.B * g.H * g.n;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < cols; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = e % g.n, bh = e / g.n, b = bh / g.H;
    float sum = 0.0f;
    for (int64_t i = 0; i < g.n; ++i)
      if (p.keep(b, i, j)) sum += cuda::load_float(dy, p.dt, (bh * g.n + i) * g.n + j);
    cuda::store_float(dend, p.dt, e, sum);
  }
}

std::vector<Tensor> global_pointer_cuda(const Inputs& in, const Attrs& attrs) {
  const GpDims g = check_gp("global_pointer", in, nullptr);
  const Tensor& q = in[0];
  Tensor out = empty({g.B, g.H, g.n, g.n}, q.dtype, q.device());
  const int64_t tiles = cuda::tiles_of(g.n);
  if (out.numel() == 0) return {out};
  cuda::launch_tiled(global_pointer_kernel, 2, dim3((unsigned)(g.B * g.G * tiles * tiles)), cuda::stream(q),
                     gp_args(g, in, attrs), out.raw(), tiles);
  cuda::check_launch("global_pointer");
  return {out};
}

std::vector<Tensor> global_pointer_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const GpDims g = check_gp_backward(in);
  const Tensor &q = in[0], &dy = in[5];
  const cudaStream_t stream = cuda::stream(q);
  Tensor dq = empty(q.shape, q.dtype, q.device());
  Tensor dk = empty(q.shape, q.dtype, q.device());
  Tensor dstart = empty({g.B, g.H, g.n}, q.dtype, q.device());
  Tensor dend = empty({g.B, g.H, g.n}, q.dtype, q.device());
  const GpArgs p = gp_args(g, in, attrs);
  const int64_t tiles = cuda::tiles_of(g.n);
  if (q.numel() > 0) {
    const dim3 grid((unsigned)(g.B * g.G * tiles), (unsigned)cuda::tiles_of(g.d));
    cuda::launch_tiled(global_pointer_backward_qk_kernel<false>, 2, grid, stream, p, dy.raw(), dq.raw(), tiles);
    cuda::launch_tiled(global_pointer_backward_qk_kernel<true>, 2, grid, stream, p, dy.raw(), dk.raw(), tiles);
    cuda::check_launch("global_pointer_backward (dq, dk)");
  }
  const int64_t rows = g.B * g.H * g.n;
  if (rows > 0) {
    global_pointer_dstart_kernel<<<cuda::blocks_for(rows * 32, 256), 256, 0, stream>>>(p, dy.raw(), dstart.raw());
    cuda::check_launch("global_pointer_backward (dstart)");
    global_pointer_dend_kernel<<<cuda::blocks_for(rows, 256), 256, 0, stream>>>(p, dy.raw(), dend.raw());
    cuda::check_launch("global_pointer_backward (dend)");
  }
  return {dq, dk, dstart, dend};
}

// ---- multilabel categorical cross-entropy ---------------------------------------------------------

constexpr int kRowThreads = 256;

// Merges every thread's logsumexp state into thread 0's, in a fixed order (lanes, then warps).
__device__ Lse block_merge(Lse v) {
  __shared__ float part_m[kRowThreads / 32], part_sum[kRowThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int off = 16; off > 0; off /= 2) {
    Lse o;
    o.m = __shfl_down_sync(0xffffffffu, v.m, off);
    o.sum = __shfl_down_sync(0xffffffffu, v.sum, off);
    if (lane + off < 32) v.merge(o);
  }
  __syncthreads();  // the partials may still be read by an earlier call
  if (lane == 0) {
    part_m[warp] = v.m;
    part_sum[warp] = v.sum;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kRowThreads / 32; ++w) {
      Lse o;
      o.m = part_m[w];
      o.sum = part_sum[w];
      v.merge(o);
    }
  return v;
}

// The result of a logsumexp with the extra element 0 (LseWithZero), from a state without it.
__device__ float with_zero(Lse v) {
  v.add(0.0f);
  return v.result();
}

__global__ void __launch_bounds__(kRowThreads)
    multilabel_ce_kernel(const void* scores, DType sdt, const void* labels, DType ldt, int64_t R, int64_t C,
                         float* loss, float* lse_neg, float* lse_pos) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    Lse neg, pos;
    for (int64_t i = threadIdx.x; i < C; i += kRowThreads) {
      const float s = cuda::load_float(scores, sdt, r * C + i), t = cuda::load_float(labels, ldt, r * C + i);
      neg.add(mlce_neg_logit(s, t));
      pos.add(mlce_pos_logit(s, t));
    }
    neg = block_merge(neg);
    pos = block_merge(pos);
    if (threadIdx.x == 0) {
      lse_neg[r] = with_zero(neg);
      lse_pos[r] = with_zero(pos);
      loss[r] = lse_neg[r] + lse_pos[r];
    }
  }
}

__global__ void multilabel_ce_backward_kernel(const void* scores, DType sdt, const void* labels, DType ldt,
                                              const float* lse_neg, const float* lse_pos, const void* dloss, DType gdt,
                                              int64_t R, int64_t C, void* dx) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < R * C; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = e / C;
    const float grad = mlce_grad(cuda::load_float(scores, sdt, e), cuda::load_float(labels, ldt, e), lse_neg[r],
                                 lse_pos[r], cuda::load_float(dloss, gdt, r));
    cuda::store_float(dx, sdt, e, grad);
  }
}

std::vector<Tensor> multilabel_ce_cuda(const Inputs& in, const Attrs&) {
  check_mlce(in);
  const Tensor &scores = in[0], &labels = in[1];
  const int64_t R = scores.shape[0], C = scores.shape[1];
  Tensor loss = empty({R}, DType::Float32, scores.device());
  Tensor lneg = empty({R}, DType::Float32, scores.device());
  Tensor lpos = empty({R}, DType::Float32, scores.device());
  if (R > 0) {
    multilabel_ce_kernel<<<cuda::blocks_for(R, 1), kRowThreads, 0, cuda::stream(scores)>>>(
        scores.raw(), scores.dtype, labels.raw(), labels.dtype, R, C, loss.data<float>(), lneg.data<float>(),
        lpos.data<float>());
    cuda::check_launch("multilabel_ce");
  }
  return {loss, lneg, lpos};
}

std::vector<Tensor> multilabel_ce_backward_cuda(const Inputs& in, const Attrs&) {
  check_mlce_backward(in);
  const Tensor &scores = in[0], &labels = in[1];
  const int64_t R = scores.shape[0], C = scores.shape[1];
  Tensor dx = empty(scores.shape, scores.dtype, scores.device());
  if (dx.numel() > 0) {
    multilabel_ce_backward_kernel<<<cuda::blocks_for(R * C, 256), 256, 0, cuda::stream(scores)>>>(
        scores.raw(), scores.dtype, labels.raw(), labels.dtype, in[2].data<float>(), in[3].data<float>(), in[4].raw(),
        in[4].dtype, R, C, dx.raw());
    cuda::check_launch("multilabel_ce_backward");
  }
  return {dx};
}

// The sparse labels' shape, then every index in [0, C) (read back from the device: a bad index
// must be an E_ARG like on the CPU, never an out-of-bounds read).
void check_sparse_cuda(const char* op, const Tensor& scores, const Tensor& idx) {
  check_sparse_shape(op, scores, idx);
  std::vector<int32_t> host((size_t)idx.numel());
  if (!host.empty()) cuda::copy_to_host(host.data(), idx.raw(), idx.nbytes(), idx.device().index);
  check_sparse_indices(op, host.data(), idx.numel(), idx.shape[1], scores.shape[1]);
}

// The sparse forward of one row per block: a = ln(1 + sum over the classes of e^s) in parallel, then
// the positives' terms in their order by one thread.
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    sparse_multilabel_ce_kernel(const T* scores, const int32_t* idx, int64_t R, int64_t C, int64_t P, bool mask_zero,
                                float eps, float* loss, float* a_out, float* b_out, float* pos_out) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* s = scores + r * C;
    Lse all;
    for (int64_t i = (mask_zero ? 1 : 0) + threadIdx.x; i < C; i += kRowThreads) all.add(to_float(s[i]));
    all = block_merge(all);
    if (threadIdx.x == 0) {
      const float a = with_zero(all);
      float b, pos;
      sparse_mlce_positives(s, idx + r * P, P, mask_zero, &b, &pos);
      a_out[r] = a;
      b_out[r] = b;
      pos_out[r] = pos;
      loss[r] = sparse_mlce_loss(a, b, pos, eps);
    }
  }
}

// d scores of the sparse form, one block per row: each class's a term, plus the b and positive
// terms once per occurrence among the row's positives, added in their order (as on the CPU).
template <class T>
__global__ void sparse_multilabel_ce_backward_kernel(const T* scores, const int32_t* idx, const float* pa,
                                                     const float* pb, const float* pp, const void* dloss, DType gdt,
                                                     int64_t R, int64_t C, int64_t P, bool mask_zero, float eps,
                                                     T* dx) {
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const float g = cuda::load_float(dloss, gdt, r);
    float dfb;
    sparse_mlce_neg(pa[r], pb[r], eps, &dfb);
    const float dfa = 1.0f - dfb;
    const int32_t* ir = idx + r * P;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      if (mask_zero && i == 0) {
        dx[r * C + i] = from_float<T>(0.0f);
        continue;
      }
      const float s = to_float(scores[r * C + i]);
      float grad = sparse_mlce_grad_all(s, pa[r], g, dfa);
      for (int64_t k = 0; k < P; ++k)
        if (ir[k] == i) grad += sparse_mlce_grad_positive(s, pb[r], pp[r], g, dfb);
      dx[r * C + i] = from_float<T>(grad);
    }
  }
}

std::vector<Tensor> sparse_multilabel_ce_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &scores = in[0], &idx = in[1];
  check_sparse_cuda("sparse_multilabel_ce", scores, idx);
  const bool mask_zero = sparse_mask_zero(attrs);
  const float eps = sparse_epsilon(attrs);
  const int64_t R = scores.shape[0], C = scores.shape[1], P = idx.shape[1];
  Tensor loss = empty({R}, DType::Float32, scores.device());
  Tensor ta = empty({R}, DType::Float32, scores.device());
  Tensor tb = empty({R}, DType::Float32, scores.device());
  Tensor tp = empty({R}, DType::Float32, scores.device());
  if (R > 0) {
    KX_DISPATCH_FLOAT(scores.dtype, {
      sparse_multilabel_ce_kernel<scalar_t><<<cuda::blocks_for(R, 1), kRowThreads, 0, cuda::stream(scores)>>>(
          scores.data<scalar_t>(), idx.data<int32_t>(), R, C, P, mask_zero, eps, loss.data<float>(), ta.data<float>(),
          tb.data<float>(), tp.data<float>());
    });
    cuda::check_launch("sparse_multilabel_ce");
  }
  return {loss, ta, tb, tp};
}

std::vector<Tensor> sparse_multilabel_ce_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &scores = in[0], &idx = in[1];
  check_sparse_cuda("sparse_multilabel_ce_backward", scores, idx);
  check_sparse_backward(in);
  const bool mask_zero = sparse_mask_zero(attrs);
  const float eps = sparse_epsilon(attrs);
  const int64_t R = scores.shape[0], C = scores.shape[1], P = idx.shape[1];
  Tensor dx = empty(scores.shape, scores.dtype, scores.device());
  if (dx.numel() > 0) {
    KX_DISPATCH_FLOAT(scores.dtype, {
      sparse_multilabel_ce_backward_kernel<scalar_t><<<cuda::blocks_for(R, 1), 256, 0, cuda::stream(scores)>>>(
          scores.data<scalar_t>(), idx.data<int32_t>(), in[2].data<float>(), in[3].data<float>(), in[4].data<float>(),
          in[5].raw(), in[5].dtype, R, C, P, mask_zero, eps, dx.data<scalar_t>());
    });
    cuda::check_launch("sparse_multilabel_ce_backward");
  }
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(global_pointer, CUDA, global_pointer_cuda);
KX_REGISTER_KERNEL(global_pointer_backward, CUDA, global_pointer_backward_cuda);
KX_REGISTER_KERNEL(multilabel_ce, CUDA, multilabel_ce_cuda);
KX_REGISTER_KERNEL(multilabel_ce_backward, CUDA, multilabel_ce_backward_cuda);
KX_REGISTER_KERNEL(sparse_multilabel_ce, CUDA, sparse_multilabel_ce_cuda);
KX_REGISTER_KERNEL(sparse_multilabel_ce_backward, CUDA, sparse_multilabel_ce_backward_cuda);

}  // namespace kx
