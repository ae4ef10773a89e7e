// matmul on the CPU: oneDNN's matmul primitive (cpu/onednn.h) with the transposes and the broadcast
// batch dims written as strides (no transposed copies) and the bias row as its epilogue. Half
// operands are widened to float32 scratch, multiplied in float32 and rounded once at the end. On
// CPUs without AVX-512 some parts run on OpenBLAS instead (openblas_for_plain_products).
//
// Packed weights (matmul_pack, matmul_packed): a weight reordered once into the blocked layout
// oneDNN's kernels read, so that a product at small m (inference at batch 1) does not pay for
// packing it on every call. The weight is packed as column panels (widths fixed by n alone), each
// in the layout oneDNN picks for this CPU and the panel's [k, width] (it does not depend on m), so
// one packed copy serves every batch size, and at few rows each thread reads only its panels:
// there the product is bound by streaming the weight ([32, 768]·[768, 3072] from memory: 685 us
// with both threads reading all of it, against 876 us on one thread).
#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <type_traits>
#include <vector>

#include "cpu/onednn.h"
#include "cpu/openblas.h"
#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/matmul/plan.h"

namespace kx {
namespace {

using dnnl::memory;
using Dims = memory::dims;

// Element type -> float32, in parallel (a no-op view for float32).
template <class T>
const float* as_float(const Tensor& t, std::unique_ptr<float[]>& scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return t.data<float>();
  } else {
    const int64_t n = t.numel();
    scratch.reset(new float[n > 0 ? n : 1]);
    const T* src = t.data<T>();
    float* dst = scratch.get();
    cpu::parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) { widen(src + b, dst + b, e - b); });
    return dst;
  }
}

memory::desc f32(const Dims& dims, const Dims& strides) { return memory::desc(dims, memory::data_type::f32, strides); }

// A float32 matrix view: element (i, j) at p[i·rs + j·cs] (a transpose is swapped strides).
struct Mat {
  const float* p;
  int64_t rs, cs;
  const float* at(int64_t i, int64_t j) const { return p + i * rs + j * cs; }
};

// One column panel of a packed weight: columns [j0, j0 + cols), a [k, cols] weight laid out as
// `desc` at byte offset `offset` in the whole (w_rs, w_cs: its strides when plain, else 0).
struct Panel {
  int64_t j0, cols;
  size_t offset;
  memory::desc desc;
  int64_t w_rs = 0, w_cs = 0;
};

// The packed layout of a [k, n] weight: oneDNN's layout of the whole, and its column panels: runs
// of the whole that are laid out as oneDNN would pack the panel alone (its blocked formats store
// blocks of columns one after another), or column slices when the layout is plain row-major (what
// oneDNN 2.6 picks without AVX-512); none for any other layout.
struct PackedLayout {
  memory::desc whole;
  std::vector<Panel> panels;
  bool row_major = false;  // the whole is a plain row-major [k, n] (oneDNN's choice without AVX-512)
};

// The weight operand of a product: a strided matrix, or a weight packed by matmul_pack.
struct Weight {
  Mat plain;
  const uint8_t* packed = nullptr;
  const PackedLayout* layout = nullptr;
};

// Rows are split in blocks of this many (what oneDNN's kernels block m by, so that no part runs a
// ragged block in the middle).
constexpr int64_t kRowBlock = 16;
// The multiply-adds a part must have: below this a part's fixed cost (a cached primitive, its
// memory objects: a few microseconds) outweighs a second thread.
constexpr int64_t kMinPartMacs = int64_t(1) << 20;
// With too few rows to split, a plain weight's columns are split into at most this many parts of
// at least kMinColPart columns, whatever the thread count: a part's width changes oneDNN's kernel,
// and with it the bits, so the widths must not depend on how many threads there are. A packed
// weight's panels follow the same rule, from n alone.
constexpr int64_t kMaxColParts = 8, kMinColPart = 256;
// A packed product with at least this many row blocks is split by rows only (see packed_product);
// below, into at least kGridTasks tasks of a panel each (blocked layouts), or one task a panel with
// every row (row-major layouts, whose panels are at least kMinRowMajorPanel columns wide).
constexpr int64_t kPanelRowBlocks = 8, kGridTasks = 4, kMinRowMajorPanel = 128;
// How rows are chunked (see row_chunks).
constexpr int64_t kRowParts = 8, kMaxChunkBlocks = 16, kPlainChunkBlocks = 16, kPackedChunkBlocks = 4;

// The width of each column part when n columns are split into at most `parts` of at least
// `min_cols` (a multiple of 64).
int64_t col_part_width(int64_t n, int64_t parts, int64_t min_cols = kMinColPart) {
  const int64_t count = std::max<int64_t>(1, std::min({kMaxColParts, n / min_cols, parts}));
  return ((n + count - 1) / count + 63) / 64 * 64;
}

// What a part's primitive depends on: its shape, the operands' strides, a packed weight (whose
// layout follows from k and its full width), a bias.
struct PartKey {
  int64_t rows, k, cols, a_rs, a_cs, w_rs, w_cs, ldc;
  bool packed, bias;
  bool operator==(const PartKey& o) const {
    return rows == o.rows && k == o.k && cols == o.cols && a_rs == o.a_rs && a_cs == o.a_cs && w_rs == o.w_rs &&
           w_cs == o.w_cs && ldc == o.ldc && packed == o.packed && bias == o.bias;
  }
};
struct PartKeyHash {
  size_t operator()(const PartKey& k) const {
    size_t h = std::hash<int64_t>()(k.rows);
    for (int64_t v : {k.k, k.cols, k.a_rs, k.a_cs, k.w_rs, k.w_cs, k.ldc, int64_t(k.packed) * 2 + k.bias})
      h = h * 1000003u ^ std::hash<int64_t>()(v);
    return h;
  }
};

// A part's primitive and the scratch memory it needs per execution.
struct PartPrimitive {
  dnnl::matmul primitive;
  memory::desc scratchpad;
};

// The primitive of a part's shape: created once (oneDNN's own cache would also find it, but asking
// it costs a primitive descriptor, ~2 us: as long as a batch-1 part's whole product). Bounded: a
// full cache is emptied, as shapes of finished work are unlikely to return all at once. The
// scratchpad is the caller's (scratchpad_mode::user): oneDNN's own is shared by every execution
// unless the library is built for concurrent execution, which Debian's is not, and two parts of
// one shape running at once then corrupt each other's sums.
PartPrimitive part_primitive(const char* what, const PartKey& key, const memory::desc& ad, const memory::desc& wd,
                             const memory::desc& bd, const memory::desc& cd) {
  static std::mutex mu;
  static std::unordered_map<PartKey, PartPrimitive, PartKeyHash> cache;
  constexpr size_t kMaxEntries = 4096;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kMaxEntries) cache.clear();
  PartPrimitive made = cpu::onednn::checked(what, [&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, wd, bd, cd), attr, cpu::onednn::engine());
    return PartPrimitive{dnnl::matmul(pd), pd.scratchpad_desc()};
  });
  return cache.emplace(key, std::move(made)).first->second;
}

// out [r1 - r0, cols] (row stride ldo) = a[r0:r1, :]·w (+ bias), w a [k, cols] weight laid out as wd
// (strides w_rs, w_cs when plain) at wp: one oneDNN call on the calling thread.
void run_part(const char* what, const Mat& a, int64_t r0, int64_t r1, int64_t k, int64_t cols, const memory::desc& wd,
              const void* wp, bool packed, int64_t w_rs, int64_t w_cs, const float* bias, float* out, int64_t ldo) {
  const int64_t rows = r1 - r0;
  const memory::desc ad = f32({rows, k}, {a.rs, a.cs}), cd = f32({rows, cols}, {ldo, 1});
  const memory::desc bd = bias ? f32({1, cols}, {cols, 1}) : memory::desc();
  const PartKey key{rows, k, cols, a.rs, a.cs, w_rs, w_cs, ldo, packed, bias != nullptr};
  // (a copy: handles that keep the kernels alive if another thread empties the cache)
  const PartPrimitive part = part_primitive(what, key, ad, wd, bd, cd);
  const auto& eng = cpu::onednn::engine();
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(ad, eng, const_cast<float*>(a.at(r0, 0)))},
                                       {DNNL_ARG_WEIGHTS, memory(wd, eng, const_cast<void*>(wp))},
                                       {DNNL_ARG_DST, memory(cd, eng, out)},
                                       {DNNL_ARG_SCRATCHPAD, cpu::onednn::scratchpad(part.scratchpad)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(bd, eng, const_cast<float*>(bias)));
  cpu::onednn::execute(what, part.primitive, args);
}

// A strided matrix as BLAS reads it: row-major with leading dimension ld, or its transpose.
struct BlasOperand {
  bool trans;
  int64_t ld;
};
// m's [rows, cols] view as a BLAS operand, if it is one (one unit stride, the other at least the
// extent it steps over, every size within OpenBLAS's 32-bit interface).
std::optional<BlasOperand> blas_operand(const Mat& m, int64_t rows, int64_t cols) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (rows > kMax || cols > kMax) return std::nullopt;
  if (m.cs == 1 && m.rs >= std::max<int64_t>(1, cols) && m.rs <= kMax) return BlasOperand{false, m.rs};
  if (m.rs == 1 && m.cs >= std::max<int64_t>(1, rows) && m.cs <= kMax) return BlasOperand{true, m.cs};
  return std::nullopt;
}

// Whether the plain products' weight-not-transposed parts go to OpenBLAS: where oneDNN runs AVX2
// kernels (no AVX-512). There its sgemm reads a [k, n] or transposed-a operand in place for these
// shapes, and at leading dimensions that are multiples of 1,024 floats it runs at half speed (BERT's
// dX = dY·W and dW = dYᵀ·X with FFN width 1024 or 3072: 57-73 against 106-132 GFLOP/s on 2 threads,
// docs/DESIGN.md); OpenBLAS always packs. A weight stored [n, k] (a Linear's forward) stays with
// oneDNN, which is as fast or faster there at every measured size. AVX-512 kernels do not have the
// problem, and oneDNN beats OpenBLAS on them.
bool openblas_for_plain_products() {
  static const bool avx2_only = (int(dnnl::get_effective_cpu_isa()) & int(dnnl::cpu_isa::avx512_core)) !=
                                int(dnnl::cpu_isa::avx512_core);
  return avx2_only;
}

// Parts of fewer rows stay with oneDNN, whose unpacked kernels serve them better.
constexpr int64_t kOpenBlasMinRows = 64;

// c [rows, cols] (row stride ldc) = a·w (+ bias) through OpenBLAS when that is the faster library
// (openblas_for_plain_products); false, doing nothing, where oneDNN should run it.
bool openblas_part(const Mat& a, const Mat& w, const float* bias, float* c, int64_t ldc, int64_t k, int64_t rows,
                   int64_t cols) {
  if (rows < kOpenBlasMinRows || !openblas_for_plain_products() || ldc > std::numeric_limits<int>::max()) return false;
  const auto ao = blas_operand(a, rows, k), wo = blas_operand(w, k, cols);
  if (!ao || !wo || wo->trans) return false;
  // the bias as c's starting rows, added to by beta = 1 (BLAS has no bias epilogue)
  if (bias)
    for (int64_t r = 0; r < rows; ++r) std::copy(bias, bias + cols, c + r * ldc);
  cpu::openblas::sgemm(ao->trans, false, rows, cols, k, a.p, ao->ld, w.p, wo->ld, bias ? 1.0f : 0.0f, c, ldc);
  return true;
}

// c[r0:r1, j0:j1] = a[r0:r1, :]·w[:, j0:j1] (+ bias[j0:j1]) for a plain weight.
void product_part(const char* what, const Mat& a, const Weight& w, const float* bias, float* c, int64_t ldc,
                  int64_t k, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
  const int64_t cols = j1 - j0;
  const Mat a_rows{a.at(r0, 0), a.rs, a.cs}, w_cols{w.plain.at(0, j0), w.plain.rs, w.plain.cs};
  if (openblas_part(a_rows, w_cols, bias ? bias + j0 : nullptr, c + r0 * ldc + j0, ldc, k, r1 - r0, cols)) return;
  run_part(what, a, r0, r1, k, cols, f32({k, cols}, {w.plain.rs, w.plain.cs}), w.plain.at(0, j0), false, w.plain.rs,
           w.plain.cs, bias ? bias + j0 : nullptr, c + r0 * ldc + j0, ldc);
}

// How the rows of a product are chunked: `count` chunks of `blocks` row blocks each. Fixed by the
// shape alone, never by the thread count: oneDNN's kernels may round a row differently at another
// place in another m (its AVX2 sgemm does), so each thread count must run the same calls, only
// spread differently over the threads. Chunks of a kRowParts-th of the rows, at most
// kMaxChunkBlocks blocks (so that more rows give more chunks, for more threads) and at least
// `least` (or half the rows): each call to oneDNN repacks a plain weight, so a plain weight's chunks
// are large (kPlainChunkBlocks: T5's [256, 512]·[512, 50000] head took its share of a train step
// from 373 to 456 ms in chunks of 64 rows rather than 128), a packed one's smaller
// (kPackedChunkBlocks: [128, 256]·[256, 1024] was 10% slower in 8 chunks than in 2).
struct RowChunks {
  int64_t count, blocks;
};
RowChunks row_chunks(int64_t row_blocks, int64_t most_parts, int64_t least) {
  least = std::min(least, (row_blocks + 1) / 2);
  const int64_t share = std::min(kMaxChunkBlocks, std::max(least, (row_blocks + kRowParts - 1) / kRowParts));
  const int64_t blocks = std::max<int64_t>({1, share, (row_blocks + most_parts - 1) / most_parts});
  return {(row_blocks + blocks - 1) / blocks, blocks};
}

// Runs fn(t) for t in [0, count) over the pool (on the calling thread when serial).
template <class F>
void run_tasks(int64_t count, bool serial, F&& fn) {
  cpu::parallel_for(count, serial ? count : 1, [&](int64_t s, int64_t e) {
    for (int64_t t = s; t < e; ++t) fn(t);
  });
}

// A packed weight's product. From kPanelRowBlocks row blocks on, in chunks of rows, each times the
// whole weight (bound by arithmetic: the weight stays in cache). Below, in tasks of one chunk of
// rows times one panel, so that each thread streams only its share of the weight.
void packed_product(const char* what, const Mat& a, const Weight& w, const float* bias, float* c, int64_t ldc,
                    int64_t m, int64_t k, int64_t n, bool serial, int64_t most_parts) {
  const PackedLayout& layout = *w.layout;
  const std::vector<Panel>& panels = layout.panels;
  const int64_t np = (int64_t)panels.size(), row_blocks = (m + kRowBlock - 1) / kRowBlock;
  if (row_blocks >= kPanelRowBlocks || np <= 1) {
    const RowChunks rc = row_chunks(row_blocks, most_parts, kPackedChunkBlocks);
    return run_tasks(rc.count, serial, [&](int64_t t) {
      const int64_t r0 = t * rc.blocks * kRowBlock, r1 = std::min(m, r0 + rc.blocks * kRowBlock);
      run_part(what, a, r0, r1, k, n, layout.whole, w.packed, true, 0, 0, bias, c + r0 * ldc, ldc);
    });
  }
  // Blocked layouts: at least kGridTasks tasks where the rows allow (the pool's chunks are static:
  // three tasks on two threads would leave one a task behind); panel-major, so that a thread's tasks
  // share panels. Row-major (AVX2) layouts: a task a panel with every row, since 16-row parts read
  // each panel twice at a low rate (cold weights, alternating processes, 2 threads:
  // [32, 768]·[768, 768] 0.56–0.76 → 0.51–0.58 ms, [32, 3072]·[3072, 768] 2.2–3.3 → 1.8–2.3 ms).
  const int64_t chunks = layout.row_major ? 1 : std::min(row_blocks, std::max<int64_t>(1, (kGridTasks + np - 1) / np));
  const int64_t per_chunk = (row_blocks + chunks - 1) / chunks;
  run_tasks(np * chunks, serial, [&](int64_t t) {
    // A panel's part writes a dense block and copies it into c: Debian's oneDNN 2.6 runs its
    // reference kernel (~300x slower) for a blocked weight whose output rows are strided.
    thread_local std::vector<float> block;
    const int64_t r0 = (t % chunks) * per_chunk * kRowBlock, r1 = std::min(m, r0 + per_chunk * kRowBlock);
    if (r0 >= r1) return;
    const Panel& p = panels[t / chunks];
    if (block.size() < size_t((r1 - r0) * p.cols)) block.resize(size_t((r1 - r0) * p.cols));
    run_part(what, a, r0, r1, k, p.cols, p.desc, w.packed + p.offset, true, p.w_rs, p.w_cs,
             bias ? bias + p.j0 : nullptr, block.data(), p.cols);
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = block.data() + (r - r0) * p.cols;
      std::copy(src, src + p.cols, c + r * ldc + p.j0);
    }
  });
}

// c [m, n] (row stride ldc) = a [m, k]·w [k, n] (+ bias). oneDNN runs each part on one thread and
// the pool runs the parts: one set of threads for every op (no second pool whose idle workers
// spin beside ours). The parts are chunks of rows (row_chunks); with a single block of rows, a
// plain weight's columns, in widths that depend on the shape alone (test/matmul_packed.test.ts
// checks that the bits do not depend on the thread count).
void product(const char* what, const Mat& a, const Weight& w, const float* bias, float* c, int64_t ldc, int64_t m,
             int64_t k, int64_t n, bool serial) {
  const int64_t most_parts = std::max<int64_t>(1, m * n * k / kMinPartMacs);
  if (w.packed) return packed_product(what, a, w, bias, c, ldc, m, k, n, serial, most_parts);
  const int64_t row_blocks = (m + kRowBlock - 1) / kRowBlock;
  if (row_blocks < 2 && most_parts > 1 && n >= 2 * kMinColPart) {
    const int64_t width = col_part_width(n, most_parts);
    return run_tasks((n + width - 1) / width, serial, [&](int64_t j) {
      product_part(what, a, w, bias, c, ldc, k, 0, m, j * width, std::min(n, (j + 1) * width));
    });
  }
  const RowChunks rc = row_chunks(row_blocks, most_parts, kPlainChunkBlocks);
  run_tasks(rc.count, serial, [&](int64_t t) {
    product_part(what, a, w, bias, c, ldc, k, t * rc.blocks * kRowBlock, std::min(m, (t + 1) * rc.blocks * kRowBlock), 0, n);
  });
}

// Every row of c [rows, n] set to the bias (or to 0 when there is none): the product when k = 0.
void fill_rows(float* c, int64_t rows, int64_t n, const float* bias) {
  cpu::parallel_for(rows, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, n)), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      if (bias) std::copy(bias, bias + n, c + r * n);
      else std::fill(c + r * n, c + (r + 1) * n, 0.0f);
    }
  });
}

// The plan's products on float32 buffers: one [batch·m, k]·[k, n] product when b is shared and a's
// rows are contiguous, else one per output batch (the batches spread over the pool when there are
// enough of them, else each product split).
void multiply(const MatmulPlan& p, const float* A, const float* B, const float* bias, float* C) {
  const int64_t m = p.m, n = p.n, k = p.k;
  if (k == 0) return fill_rows(C, p.nbatch * m, n, bias);
  const Mat a_mat{A, p.ta ? 1 : k, p.ta ? m : 1};
  const Weight w{{B, p.tb ? 1 : n, p.tb ? k : 1}};
  if (p.b_batches == 1 && !p.ta) return product("matmul", a_mat, w, bias, C, n, p.nbatch * m, k, n, false);
  std::vector<int64_t> a_off(p.nbatch), b_off(p.nbatch);
  for (int64_t t = 0; t < p.nbatch; ++t) p.batch_offsets(t, &a_off[t], &b_off[t]);
  auto one = [&](int64_t t, bool serial) {
    const Mat at{A + a_off[t], a_mat.rs, a_mat.cs};
    const Weight wt{{B + b_off[t], w.plain.rs, w.plain.cs}};
    product("matmul", at, wt, bias, C + t * m * n, n, m, k, n, serial);
  };
  if (p.nbatch >= cpu::num_threads()) {
    cpu::parallel_for(p.nbatch, std::max<int64_t>(1, kMinPartMacs / std::max<int64_t>(1, m * n * k)),
                      [&](int64_t s, int64_t e) { for (int64_t t = s; t < e; ++t) one(t, true); });
  } else {
    for (int64_t t = 0; t < p.nbatch; ++t) one(t, false);
  }
}

// Calls body(a, bias, c) with float32 views of a, the bias (null when absent) and y, then rounds c
// into y when y is a half tensor.
template <class F>
void with_float32(const Tensor& a, const Tensor& bias, const Tensor& y, F&& body) {
  KX_DISPATCH_FLOAT(a.dtype, {
    std::unique_ptr<float[]> a_tmp, bias_tmp, c_tmp;
    const float* A = as_float<scalar_t>(a, a_tmp);
    const float* bias_row = bias.defined() ? as_float<scalar_t>(bias, bias_tmp) : nullptr;
    float* C;
    if constexpr (std::is_same_v<scalar_t, float>) {
      C = y.data<float>();
    } else {
      c_tmp.reset(new float[y.numel()]);
      C = c_tmp.get();
    }
    body(A, bias_row, C);
    if constexpr (!std::is_same_v<scalar_t, float>) {
      scalar_t* out = y.data<scalar_t>();
      cpu::parallel_for(y.numel(), 1 << 14, [&](int64_t s, int64_t e) { narrow(C + s, out + s, e - s); });
    }
  });
}

std::vector<Tensor> matmul_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  const Tensor& bias = in[2];
  const MatmulPlan plan = plan_matmul(a, b, bias, attrs.flag("transA", false), attrs.flag("transB", false));
  Tensor y = empty(plan.out_shape, a.dtype, a.device());
  if (y.numel() == 0) return {y};
  with_float32(a, bias, y, [&](const float* A, const float* bias_row, float* C) {
    std::unique_ptr<float[]> b_tmp;
    const float* B = nullptr;
    KX_DISPATCH_FLOAT(b.dtype, { B = as_float<scalar_t>(b, b_tmp); });
    multiply(plan, A, B, bias_row, C);
  });
  return {y};
}

// The layout oneDNN picks for a [k, n] float32 weight when asked for any (it does not depend on m).
memory::desc panel_desc(int64_t k, int64_t n) {
  constexpr int64_t m = 128;  // any m
  const memory::desc any({k, n}, memory::data_type::f32, memory::format_tag::any);
  return cpu::onednn::checked("matmul_pack", [&] {
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(f32({m, k}, {k, 1}), any, f32({m, n}, {n, 1})),
                                        cpu::onednn::engine())
        .weights_desc();
  });
}

// Where panel [j0, j0 + cols) of a weight packed as `whole` starts, in bytes, if it is stored
// there exactly as a weight of its own packed as `panel`; else -1. That is the case for oneDNN's
// blocked formats with the columns' blocks outermost (BA16a64b and the like) when j0 and cols are
// whole blocks: the panel is then a run of the whole's column blocks.
int64_t panel_offset(const memory::desc& whole, const memory::desc& panel, int64_t j0, int64_t cols, int64_t n) {
  const dnnl_memory_desc_t &w = whole.data, &p = panel.data;
  if (w.format_kind != dnnl_blocked || p.format_kind != dnnl_blocked || w.offset0 != 0 || p.offset0 != 0) return -1;
  const auto &wb = w.format_desc.blocking, &pb = p.format_desc.blocking;
  if (wb.inner_nblks != pb.inner_nblks || wb.strides[0] != pb.strides[0] || wb.strides[1] != pb.strides[1]) return -1;
  int64_t col_block = 1;
  for (int i = 0; i < wb.inner_nblks; ++i) {
    if (wb.inner_blks[i] != pb.inner_blks[i] || wb.inner_idxs[i] != pb.inner_idxs[i]) return -1;
    if (wb.inner_idxs[i] == 1) col_block *= wb.inner_blks[i];
  }
  // the columns' blocks outermost, whole blocks, and the panel dense
  if (wb.strides[1] <= wb.strides[0] || j0 % col_block != 0 || (j0 + cols < n && cols % col_block != 0)) return -1;
  if ((int64_t)panel.get_size() != (p.padded_dims[1] / col_block) * wb.strides[1] * (int64_t)sizeof(float)) return -1;
  return (j0 / col_block) * wb.strides[1] * (int64_t)sizeof(float);
}

// The packed layout of a [k, n] weight (cached per shape: asking oneDNN for a layout costs a
// primitive descriptor). Entries are never removed, so references to them stay valid.
const PackedLayout& packed_layout(int64_t k, int64_t n) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, int64_t>, PackedLayout> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({k, n});
  if (it != cache.end()) return it->second;
  PackedLayout layout{panel_desc(k, n), {}};
  const dnnl_memory_desc_t& whole = layout.whole.data;
  const bool row_major = whole.format_kind == dnnl_blocked && whole.format_desc.blocking.inner_nblks == 0 &&
                         whole.format_desc.blocking.strides[0] == n && whole.format_desc.blocking.strides[1] == 1;
  // Row-major rows 4 KiB apart (n a multiple of 1,024) ran oneDNN's AVX2 kernels at half speed or
  // worse ([128, 768]·[768, 3072]: 62 against 102 GFLOP/s; [4096, 256]·[256, 1024]: 65 against 125):
  // the rows of such a weight are stored 16 floats further apart. n = 768 gained nothing from it.
  const int64_t ld = row_major && n % 1024 == 0 ? n + 16 : n;
  if (row_major) layout.whole = f32({k, n}, {ld, 1});
  layout.row_major = row_major;
  const int64_t width = col_part_width(n, kMaxColParts, row_major ? kMinRowMajorPanel : kMinColPart);
  for (int64_t j0 = 0; j0 < n && width < n; j0 += width) {
    const int64_t cols = std::min(width, n - j0);
    if (row_major) {
      layout.panels.push_back(Panel{j0, cols, size_t(j0) * sizeof(float), f32({k, cols}, {ld, 1}), ld, 1});
      continue;
    }
    memory::desc desc = panel_desc(k, cols);
    const int64_t offset = panel_offset(layout.whole, desc, j0, cols, n);
    if (offset < 0) {  // panels that are not runs of the whole: products split by rows only
      layout.panels.clear();
      break;
    }
    layout.panels.push_back(Panel{j0, cols, (size_t)offset, std::move(desc)});
  }
  return cache.emplace(std::make_pair(k, n), std::move(layout)).first->second;
}

std::vector<Tensor> matmul_pack_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& b = in[0];
  const bool tb = attrs.flag("transB", false);
  KX_CHECK(b.dim() == 2, Shape, "matmul_pack: the weight must be a matrix, got ", shape_str(b.shape));
  const int64_t k = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
  KX_CHECK(k > 0 && n > 0, Shape, "matmul_pack: the weight is empty: ", shape_str(b.shape));
  const PackedLayout& layout = packed_layout(k, n);
  Tensor out = empty({(int64_t)layout.whole.get_size()}, DType::UInt8, b.device());
  std::unique_ptr<float[]> b_tmp;
  const float* B = nullptr;
  KX_DISPATCH_FLOAT(b.dtype, { B = as_float<scalar_t>(b, b_tmp); });
  const auto& eng = cpu::onednn::engine();
  memory src(f32({k, n}, tb ? Dims{1, k} : Dims{n, 1}), eng, const_cast<float*>(B));
  memory dst(layout.whole, eng, out.raw());
  const dnnl::reorder::primitive_desc pd = cpu::onednn::checked("matmul_pack", [&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // (see part_primitive)
    return dnnl::reorder::primitive_desc(src, dst, attr);
  });
  cpu::onednn::execute("matmul_pack", dnnl::reorder(pd),
                       {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}, {DNNL_ARG_SCRATCHPAD, cpu::onednn::scratchpad(pd.scratchpad_desc())}});
  return {out};
}

std::vector<Tensor> matmul_packed_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& a = in[0];
  const Tensor& packed = in[1];
  const Tensor& bias = in[2];
  const int64_t k = attrs.int_("k", -1), n = attrs.int_("n", -1);
  KX_CHECK(k > 0 && n > 0, Arg, "matmul_packed: k and n must be positive, got ", k, " and ", n);
  KX_CHECK(a.dim() >= 1 && a.size(-1) == k, Shape, "matmul_packed: a must be [..., ", k, "], got ", shape_str(a.shape));
  const PackedLayout& layout = packed_layout(k, n);
  KX_CHECK(packed.dim() == 1 && packed.numel() == (int64_t)layout.whole.get_size(), Arg, "matmul_packed: ", packed.numel(),
           " bytes are not a [", k, ", ", n, "] weight packed by matmul_pack in this process (", layout.whole.get_size(), ")");
  KX_CHECK(!bias.defined() || (bias.dtype == a.dtype && bias.dim() == 1 && bias.shape[0] == n), Shape,
           "matmul_packed: bias must be a ", dtype_name(a.dtype), " vector [", n, "], got ",
           bias.defined() ? shape_str(bias.shape) : "");
  Shape out_shape = a.shape;
  out_shape.back() = n;
  Tensor y = empty(out_shape, a.dtype, a.device());
  const int64_t rows = a.numel() / k;
  if (rows == 0) return {y};
  with_float32(a, bias, y, [&](const float* A, const float* bias_row, float* C) {
    const Weight weight{{nullptr, 0, 0}, static_cast<const uint8_t*>(packed.raw()), &layout};
    product("matmul_packed", Mat{A, k, 1}, weight, bias_row, C, n, rows, k, n, false);
  });
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(matmul, CPU, matmul_cpu);
KX_REGISTER_KERNEL(matmul_pack, CPU, matmul_pack_cpu);
KX_REGISTER_KERNEL(matmul_packed, CPU, matmul_packed_cpu);

}  // namespace kx
