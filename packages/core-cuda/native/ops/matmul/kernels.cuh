// kexue's own GEMM kernels, for machines where cuBLASLt cannot be opened (and for the kernel lab,
// dev/kernels/matmul.cu, which times them against it). Row-major c[m, n] = op(a) · op(b) (+ bias
// row), batched with broadcast batch dims, any m, n, k.
//
// float16 / bfloat16: tensor cores (mma.sync m16n8k16, float32 accumulation) fed by ldmatrix from
// shared memory tiles that cp.async fills kStages tiles ahead. Each operand's tile keeps the
// operand's contiguous dim contiguous in shared memory (k-major or m/n-major), and ldmatrix's
// .trans form makes the mma fragments out of the m/n-major ones, so transposes cost nothing. Rows
// are padded by 16 bytes, so the 8 row addresses of each ldmatrix phase fall in distinct banks.
// Operands whose rows are not 16-byte aligned go through a scalar loader into the same tiles.
//
// float32: a tiled SIMT kernel with exact float32 FMAs (no TF32): correctness first.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/mma.cuh"
#include "kx/dtype.h"

namespace kx::gemm {

// Batch dims the kernels walk themselves (callers loop over any further outer dims).
constexpr int kMaxBatchDims = 6;

struct Batch {
  int rank = 0;  // 0: a single product
  int64_t count = 1;
  int64_t size[kMaxBatchDims] = {};
  int64_t a_stride[kMaxBatchDims] = {}, b_stride[kMaxBatchDims] = {};  // elements; 0 where broadcast
};

template <class T>
struct Args {
  const T* a;
  const T* b;
  const T* bias;  // [n] or null
  T* c;           // batches are contiguous [m, n] blocks
  int m, n, k;
  bool ta, tb;  // a stored [k, m] / b stored [n, k]
  Batch batch;
};

__device__ __forceinline__ void batch_offsets(const Batch& b, int64_t t, int64_t* a_off, int64_t* b_off) {
  int64_t ai = 0, bi = 0;
  for (int d = b.rank - 1; d >= 0; --d) {
    const int64_t idx = t % b.size[d];
    t /= b.size[d];
    ai += idx * b.a_stride[d];
    bi += idx * b.b_stride[d];
  }
  *a_off = ai;
  *b_off = bi;
}

template <class T>
__device__ __forceinline__ uint16_t bits_of(float v) {
  return from_float<T>(v).bits;
}

// ---- tensor-core kernel (float16 / bfloat16) ---------------------------------------------------

namespace tc {

constexpr int kBK = 32;     // k per tile
constexpr int kStages = 4;  // tiles in flight
constexpr int kPad = 8;     // elements (16 bytes) added to each shared-memory row

template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int MIN_BLOCKS_>
struct Config {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int kMinBlocks = MIN_BLOCKS_;  // per SM: caps registers so that many blocks fit
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // one warp's tile
  static constexpr int MI = WM / 16, NI = WN / 8;             // its mma tiles
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile must be whole m16 x n16 blocks");
};
using BigTile = Config<128, 128, 2, 4, 2>;   // 256 threads, 64x32 per warp
using SmallTile = Config<128, 64, 2, 2, 3>;  // 128 threads, for products too small to fill the GPU

// Shared-memory elements of an operand's tile: `rows` (m or n) by kBK, stored k-major or not.
template <int ROWS, bool KMAJOR>
constexpr int tile_elems() {
  return KMAJOR ? ROWS * (kBK + kPad) : kBK * (ROWS + kPad);
}

template <class Cfg, bool A_KMAJOR, bool B_KMAJOR>
constexpr size_t smem_bytes() {
  return (size_t)kStages * (tile_elems<Cfg::BM, A_KMAJOR>() + tile_elems<Cfg::BN, B_KMAJOR>()) * sizeof(uint16_t);
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16 bytes global -> shared, bypassing L1; src_bytes 0 writes zeros (out-of-range chunks).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 b16 matrices from shared memory (byte address), one row address per lane.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Copies a [ROWS, COLS] tile (COLS contiguous, in memory and in shared memory) whose first element is
// at src, zero-filling past rows_left / cols_left. VEC: 16-byte cp.async chunks (rows 16-byte
// aligned, cols_left a multiple of 8); otherwise element by element.
template <int ROWS, int COLS, int THREADS, bool VEC>
__device__ __forceinline__ void load_tile(uint16_t* dst, const uint16_t* src, int64_t ld, int rows_left,
                                          int cols_left, int tid) {
  constexpr int kChunksPerRow = COLS / 8, kChunks = ROWS * kChunksPerRow, kStride = COLS + kPad;
  static_assert(kChunks % THREADS == 0, "tile chunks must divide among the threads");
#pragma unroll
  for (int i = 0; i < kChunks / THREADS; ++i) {
    const int c = tid + i * THREADS;
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    uint16_t* d = dst + r * kStride + col;
    if constexpr (VEC) {
      const bool in = r < rows_left && col < cols_left;
      cp_async16(d, in ? src + r * ld + col : src, in ? 16 : 0);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) d[e] = (r < rows_left && col + e < cols_left) ? src[r * ld + col + e] : uint16_t(0);
    }
  }
}

template <class T, class Cfg, bool A_KMAJOR, bool B_KMAJOR, bool VEC>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) gemm_kernel(const Args<T> p) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, MI = Cfg::MI, NI = Cfg::NI;
  constexpr int kAElems = tile_elems<BM, A_KMAJOR>(), kStageElems = kAElems + tile_elems<BN, B_KMAJOR>();
  extern __shared__ __align__(16) uint16_t smem[];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = (warp / Cfg::WARPS_N) * Cfg::WM, warp_n = (warp % Cfg::WARPS_N) * Cfg::WN;
  const int M = p.m, N = p.n, K = p.k;
  const int64_t lda = A_KMAJOR ? K : M, ldb = B_KMAJOR ? K : N;
  const int tiles_m = (M + BM - 1) / BM, ktiles = (K + kBK - 1) / kBK;
  const int n0 = blockIdx.x * BN;

  // Byte offsets, within a stage, of the row this lane hands to each ldmatrix at kk = 0 (fragments
  // as mma.m16n8k16 wants them: a0..a3 = (rows 0-7 | 8-15) x (k 0-7 | 8-15); b0, b1 = k 0-7 | 8-15
  // of 8 columns, so one ldmatrix.x4 makes an A fragment or two B fragments). Kept as 32-bit shared
  // addresses: fewer registers than generic pointers.
  const uint32_t smem_base = smem_addr(smem);
  uint32_t a_frag[MI], b_frag[NI / 2];
#pragma unroll
  for (int i = 0; i < MI; ++i) {
    const int m = warp_m + i * 16;
    a_frag[i] = 2 * (A_KMAJOR ? (m + (lane & 15)) * (kBK + kPad) + (lane >> 4) * 8
                              : ((lane & 7) + ((lane >> 4) << 3)) * (BM + kPad) + m + ((lane >> 3) & 1) * 8);
  }
#pragma unroll
  for (int j = 0; j < NI / 2; ++j) {
    const int n = warp_n + j * 16;
    b_frag[j] = 2 * (B_KMAJOR ? (n + (lane & 7) + ((lane >> 4) << 3)) * (kBK + kPad) + ((lane >> 3) & 1) * 8
                              : ((lane & 7) + (((lane >> 3) & 1) << 3)) * (BN + kPad) + n + (lane >> 4) * 8);
  }
  constexpr uint32_t a_kstep = 2 * (A_KMAJOR ? 1 : BM + kPad), b_kstep = 2 * (B_KMAJOR ? 1 : BN + kPad);

  for (int64_t z = blockIdx.z; z < p.batch.count; z += gridDim.z) {
    int64_t a_off, b_off;
    batch_offsets(p.batch, z, &a_off, &b_off);
    const uint16_t* A = reinterpret_cast<const uint16_t*>(p.a) + a_off;
    const uint16_t* B = reinterpret_cast<const uint16_t*>(p.b) + b_off;
    T* C = p.c + z * (int64_t)M * N;
    for (int tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
      const int m0 = tm * BM;
      auto load_stage = [&](int stage, int kt) {
        const int k0 = kt * kBK;
        uint16_t* sa = smem + stage * kStageElems;
        uint16_t* sb = sa + kAElems;
        if constexpr (A_KMAJOR) load_tile<BM, kBK, Cfg::kThreads, VEC>(sa, A + m0 * lda + k0, lda, M - m0, K - k0, tid);
        else load_tile<kBK, BM, Cfg::kThreads, VEC>(sa, A + k0 * lda + m0, lda, K - k0, M - m0, tid);
        if constexpr (B_KMAJOR) load_tile<BN, kBK, Cfg::kThreads, VEC>(sb, B + n0 * ldb + k0, ldb, N - n0, K - k0, tid);
        else load_tile<kBK, BN, Cfg::kThreads, VEC>(sb, B + k0 * ldb + n0, ldb, K - k0, N - n0, tid);
      };

      float acc[MI][NI][4];
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

#pragma unroll
      for (int s = 0; s < kStages - 1; ++s) {
        if (s < ktiles) load_stage(s, s);
        cp_async_commit();  // (empty groups keep the wait counts uniform)
      }
      for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<kStages - 2>();  // tile kt has landed ...
        __syncthreads();               // ... for every thread, and tile kt - 1's stage is free again
        if (kt + kStages - 1 < ktiles) load_stage((kt + kStages - 1) % kStages, kt + kStages - 1);
        cp_async_commit();

        const uint32_t sa = smem_base + (kt % kStages) * kStageElems * 2, sb = sa + kAElems * 2;
#pragma unroll
        for (int kk = 0; kk < kBK; kk += 16) {
          uint32_t af[MI][4], bf[NI][2];
#pragma unroll
          for (int i = 0; i < MI; ++i) {
            if constexpr (A_KMAJOR) ldmatrix_x4(af[i], sa + a_frag[i] + kk * a_kstep);
            else ldmatrix_x4_trans(af[i], sa + a_frag[i] + kk * a_kstep);
          }
#pragma unroll
          for (int j = 0; j < NI; j += 2) {
            uint32_t r[4];
            if constexpr (B_KMAJOR) ldmatrix_x4(r, sb + b_frag[j / 2] + kk * b_kstep);
            else ldmatrix_x4_trans(r, sb + b_frag[j / 2] + kk * b_kstep);
            bf[j][0] = r[0];
            bf[j][1] = r[1];
            bf[j + 1][0] = r[2];
            bf[j + 1][1] = r[3];
          }
#pragma unroll
          for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int j = 0; j < NI; ++j) cuda::mma_16816<T>(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
      }
      cp_async_wait<0>();
      __syncthreads();  // the next tile's prologue reuses the stages

      // Epilogue: accumulator (g, 2t..2t+1) and (g + 8, 2t..2t+1) of each tile, + bias, rounded once.
      const int g = lane >> 2, t2 = (lane & 3) * 2;
      const bool pairs = (N & 1) == 0;  // then two neighbours are one aligned 32-bit store
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int col = n0 + warp_n + j * 8 + t2;
        if (col >= N) continue;
        const bool two = col + 1 < N;
        const float bias0 = p.bias ? to_float(p.bias[col]) : 0.0f;
        const float bias1 = p.bias && two ? to_float(p.bias[col + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < MI; ++i) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = m0 + warp_m + i * 16 + g + h * 8;
            if (row >= M) continue;
            uint16_t* out = reinterpret_cast<uint16_t*>(C + (int64_t)row * N + col);
            const uint16_t v0 = bits_of<T>(acc[i][j][2 * h] + bias0), v1 = bits_of<T>(acc[i][j][2 * h + 1] + bias1);
            if (pairs && two) {
              *reinterpret_cast<uint32_t*>(out) = (uint32_t)v0 | ((uint32_t)v1 << 16);
            } else {
              out[0] = v0;
              if (two) out[1] = v1;
            }
          }
        }
      }
    }
  }
}

}  // namespace tc

// ---- float32 SIMT kernel -----------------------------------------------------------------------

namespace simt {

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

// Element (r, kk) of a tile of an operand stored k-major (r * ld + kk) or r-major (kk * ld + r).
template <bool KMAJOR>
__device__ __forceinline__ void load_tile(float (*dst)[kBM + 4], const float* src, int64_t ld, int rows_left,
                                          int k_left, int tid) {
#pragma unroll
  for (int i = 0; i < kBM * kBK / kThreads; ++i) {
    const int idx = tid + i * kThreads;
    // Consecutive threads walk the operand's contiguous dim, so the global loads coalesce.
    const int r = KMAJOR ? idx / kBK : idx % kBM, kk = KMAJOR ? idx % kBK : idx / kBM;
    dst[kk][r] = (r < rows_left && kk < k_left) ? src[KMAJOR ? r * ld + kk : kk * ld + r] : 0.0f;
  }
}

template <bool A_KMAJOR, bool B_KMAJOR>
__global__ void __launch_bounds__(kThreads) gemm_kernel(const Args<float> p) {
  __shared__ __align__(16) float As[kBK][kBM + 4];
  __shared__ __align__(16) float Bs[kBK][kBN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int M = p.m, N = p.n, K = p.k;
  const int64_t lda = A_KMAJOR ? K : M, ldb = B_KMAJOR ? K : N;
  const int tiles_m = (M + kBM - 1) / kBM;
  const int n0 = blockIdx.x * kBN;

  for (int64_t z = blockIdx.z; z < p.batch.count; z += gridDim.z) {
    int64_t a_off, b_off;
    batch_offsets(p.batch, z, &a_off, &b_off);
    const float* A = p.a + a_off;
    const float* B = p.b + b_off;
    float* C = p.c + z * (int64_t)M * N;
    for (int tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
      const int m0 = tm * kBM;
      float acc[4][4] = {};
      for (int k0 = 0; k0 < K; k0 += kBK) {
        load_tile<A_KMAJOR>(As, A + (A_KMAJOR ? m0 * lda + k0 : k0 * lda + m0), lda, M - m0, K - k0, tid);
        load_tile<B_KMAJOR>(Bs, B + (B_KMAJOR ? n0 * ldb + k0 : k0 * ldb + n0), ldb, N - n0, K - k0, tid);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; ++kk) {
          const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
          const float4 b = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
          const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = m0 + ty * 4 + i;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int col = n0 + tx * 4 + j;
          if (col < N) C[(int64_t)row * N + col] = acc[i][j] + (p.bias ? p.bias[col] : 0.0f);
        }
      }
    }
  }
}

}  // namespace simt

// ---- launch ------------------------------------------------------------------------------------

inline int sm_count() {
  int device = 0, count = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
  return count > 0 ? count : 1;
}

inline dim3 grid_for(int m, int n, int bm, int bn, int64_t batches) {
  const int64_t tiles_m = (m + bm - 1) / bm;
  return dim3((unsigned)((n + bn - 1) / bn), (unsigned)std::min<int64_t>(tiles_m, 65535),
              (unsigned)std::min<int64_t>(batches, 65535));
}

template <class T, class Cfg, bool A_KMAJOR, bool B_KMAJOR, bool VEC>
void launch_tc(const Args<T>& p, cudaStream_t stream) {
  constexpr size_t smem = tc::smem_bytes<Cfg, A_KMAJOR, B_KMAJOR>();
  auto kernel = tc::gemm_kernel<T, Cfg, A_KMAJOR, B_KMAJOR, VEC>;
  // Above the default 48 KiB of shared memory a kernel must opt in (once per device and kernel).
  static bool opted_in[64] = {};
  int device = 0;
  cudaGetDevice(&device);
  if (device < 64 && !opted_in[device]) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess) return;
    opted_in[device] = true;
  }
  kernel<<<grid_for(p.m, p.n, Cfg::BM, Cfg::BN, p.batch.count), Cfg::kThreads, smem, stream>>>(p);
}

template <class T, bool A_KMAJOR, bool B_KMAJOR>
void launch_tc_layout(const Args<T>& p, cudaStream_t stream) {
  // 16-byte chunks need 16-byte aligned rows: base addresses and leading dims in multiples of 8
  // (batch strides are multiples of a leading dim).
  const bool vec = ((uintptr_t)p.a % 16) == 0 && ((uintptr_t)p.b % 16) == 0 && (A_KMAJOR ? p.k : p.m) % 8 == 0 &&
                   (B_KMAJOR ? p.k : p.n) % 8 == 0;
  if (!vec) return launch_tc<T, tc::SmallTile, A_KMAJOR, B_KMAJOR, false>(p, stream);
  const int64_t big_tiles = (int64_t)((p.m + 127) / 128) * ((p.n + 127) / 128) * p.batch.count;
  if (big_tiles >= sm_count()) return launch_tc<T, tc::BigTile, A_KMAJOR, B_KMAJOR, true>(p, stream);
  launch_tc<T, tc::SmallTile, A_KMAJOR, B_KMAJOR, true>(p, stream);
}

template <bool A_KMAJOR, bool B_KMAJOR>
void launch_simt(const Args<float>& p, cudaStream_t stream) {
  simt::gemm_kernel<A_KMAJOR, B_KMAJOR>
      <<<grid_for(p.m, p.n, simt::kBM, simt::kBN, p.batch.count), simt::kThreads, 0, stream>>>(p);
}

// Launches the product on `stream` with kexue's kernels. Launch errors are left for
// cudaGetLastError (kx::cuda::check_launch in the addon).
template <class T>
void gemm(const Args<T>& p, cudaStream_t stream) {
  if (p.m <= 0 || p.n <= 0 || p.batch.count <= 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (!p.ta && !p.tb) return launch_simt<true, false>(p, stream);
    if (!p.ta && p.tb) return launch_simt<true, true>(p, stream);
    if (p.ta && !p.tb) return launch_simt<false, false>(p, stream);
    return launch_simt<false, true>(p, stream);
  } else {
    if (!p.ta && !p.tb) return launch_tc_layout<T, true, false>(p, stream);
    if (!p.ta && p.tb) return launch_tc_layout<T, true, true>(p, stream);
    if (p.ta && !p.tb) return launch_tc_layout<T, false, false>(p, stream);
    return launch_tc_layout<T, false, true>(p, stream);
  }
}

}  // namespace kx::gemm
