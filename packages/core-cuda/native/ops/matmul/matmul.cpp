// matmul on the CPU: oneDNN's matmul primitive (cpu/onednn.h) with the transposes and the broadcast
// batch dims written as strides (no transposed copies) and the bias row as its epilogue. Half
// operands are widened to float32 scratch, multiplied in float32 and rounded once at the end.
//
// Packed weights (matmul_pack, matmul_packed): a weight reordered once into the blocked layout
// oneDNN's kernels read, so that a product at small m (inference at batch 1) does not pay for
// packing it on every call. The layout is oneDNN's choice for this CPU; it depends on k and n only
// (blocks of k and n, the same for every m), so one packed copy serves every batch size.
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <type_traits>

#include "cpu/onednn.h"
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

// The weight operand of a product: a strided matrix, or a weight packed by matmul_pack (whole:
// its layout is oneDNN's, so it is never split by columns).
struct Weight {
  Mat plain;
  const void* packed = nullptr;
  memory::desc packed_desc;
};

// Rows are split in blocks of this many (what oneDNN's kernels block m by, so that no part runs a
// ragged block in the middle).
constexpr int64_t kRowBlock = 16;
// The multiply-adds a part must have: below this a part's fixed cost (a cached primitive, its
// memory objects: a few microseconds) outweighs a second thread.
constexpr int64_t kMinPartMacs = int64_t(1) << 20;
// With too few rows to split, a plain weight's columns are split into at most this many parts of
// at least kMinColPart columns, whatever the thread count: a part's width changes oneDNN's kernel,
// and with it the bits, so the widths must not depend on how many threads there are.
constexpr int64_t kMaxColParts = 8, kMinColPart = 256;

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

// c[r0:r1, j0:j1] = a[r0:r1, :]·w[:, j0:j1] (+ bias[j0:j1]), one oneDNN call on the calling thread.
void product_part(const char* what, const Mat& a, const Weight& w, const float* bias, float* c, int64_t ldc,
                  int64_t k, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
  const int64_t rows = r1 - r0, cols = j1 - j0;
  const memory::desc ad = f32({rows, k}, {a.rs, a.cs}), cd = f32({rows, cols}, {ldc, 1});
  const memory::desc wd = w.packed ? w.packed_desc : f32({k, cols}, {w.plain.rs, w.plain.cs});
  const memory::desc bd = bias ? f32({1, cols}, {cols, 1}) : memory::desc();
  const PartKey key{rows, k, cols, a.rs, a.cs, w.plain.rs, w.plain.cs, ldc, w.packed != nullptr, bias != nullptr};
  // (a copy: handles that keep the kernels alive if another thread empties the cache)
  const PartPrimitive part = part_primitive(what, key, ad, wd, bd, cd);
  const auto& eng = cpu::onednn::engine();
  const void* wp = w.packed ? w.packed : static_cast<const void*>(w.plain.at(0, j0));
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(ad, eng, const_cast<float*>(a.at(r0, 0)))},
                                       {DNNL_ARG_WEIGHTS, memory(wd, eng, const_cast<void*>(wp))},
                                       {DNNL_ARG_DST, memory(cd, eng, c + r0 * ldc + j0)},
                                       {DNNL_ARG_SCRATCHPAD, cpu::onednn::scratchpad(part.scratchpad)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(bd, eng, const_cast<float*>(bias + j0)));
  cpu::onednn::execute(what, part.primitive, args);
}

// c [m, n] (row stride ldc) = a [m, k]·w [k, n] (+ bias). oneDNN runs each part on one thread and
// the pool runs the parts: one set of threads for every op (no second pool whose idle workers
// spin beside ours), and parts taken as threads come free, so a descheduled thread delays no one.
// The rows are split in blocks of kRowBlock (the bits do not depend on where: checked in
// test/matmul_packed.test.ts); a single block of rows, by a plain weight's columns.
void product(const char* what, const Mat& a, const Weight& w, const float* bias, float* c, int64_t ldc, int64_t m,
             int64_t k, int64_t n, bool serial) {
  const int64_t threads = serial ? 1 : cpu::num_threads();
  const int64_t most_parts = std::max<int64_t>(1, m * n * k / kMinPartMacs);
  const int64_t row_blocks = (m + kRowBlock - 1) / kRowBlock;
  if (!w.packed && row_blocks < 2 && most_parts > 1 && n >= 2 * kMinColPart) {
    // one block of rows: the columns, in parts whose widths depend on the shape alone
    const int64_t col_parts = std::min({kMaxColParts, n / kMinColPart, most_parts});
    const int64_t width = ((n + col_parts - 1) / col_parts + 63) / 64 * 64;
    const int64_t grain = serial ? col_parts : 1;
    cpu::parallel_for((n + width - 1) / width, grain, [&](int64_t s, int64_t e) {
      for (int64_t j = s; j < e; ++j) product_part(what, a, w, bias, c, ldc, k, 0, m, j * width, std::min(n, (j + 1) * width));
    });
    return;
  }
  const int64_t parts = std::min({threads, most_parts, row_blocks});
  if (parts <= 1) return product_part(what, a, w, bias, c, ldc, k, 0, m, 0, n);
  cpu::parallel_for(row_blocks, row_blocks / parts, [&](int64_t s, int64_t e) {
    product_part(what, a, w, bias, c, ldc, k, s * kRowBlock, std::min(m, e * kRowBlock), 0, n);
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

// The packed layout of a [k, n] float32 weight: what oneDNN picks when asked for any layout (cached
// per shape: asking costs a primitive descriptor).
memory::desc packed_weight_desc(int64_t k, int64_t n) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, int64_t>, memory::desc> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({k, n});
  if (it != cache.end()) return it->second;
  constexpr int64_t m = 128;  // any m: the layout does not depend on it
  const memory::desc any({k, n}, memory::data_type::f32, memory::format_tag::any);
  const memory::desc w = cpu::onednn::checked("matmul_pack", [&] {
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(f32({m, k}, {k, 1}), any, f32({m, n}, {n, 1})),
                                        cpu::onednn::engine())
        .weights_desc();
  });
  return cache.emplace(std::make_pair(k, n), w).first->second;
}

std::vector<Tensor> matmul_pack_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& b = in[0];
  const bool tb = attrs.flag("transB", false);
  KX_CHECK(b.dim() == 2, Shape, "matmul_pack: the weight must be a matrix, got ", shape_str(b.shape));
  const int64_t k = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
  KX_CHECK(k > 0 && n > 0, Shape, "matmul_pack: the weight is empty: ", shape_str(b.shape));
  const memory::desc packed = packed_weight_desc(k, n);
  Tensor out = empty({(int64_t)packed.get_size()}, DType::UInt8, b.device());
  std::unique_ptr<float[]> b_tmp;
  const float* B = nullptr;
  KX_DISPATCH_FLOAT(b.dtype, { B = as_float<scalar_t>(b, b_tmp); });
  const auto& eng = cpu::onednn::engine();
  memory src(f32({k, n}, tb ? Dims{1, k} : Dims{n, 1}), eng, const_cast<float*>(B));
  memory dst(packed, eng, out.raw());
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
  const memory::desc w = packed_weight_desc(k, n);
  KX_CHECK(packed.dim() == 1 && packed.numel() == (int64_t)w.get_size(), Arg, "matmul_packed: ", packed.numel(),
           " bytes are not a [", k, ", ", n, "] weight packed by matmul_pack in this process (", w.get_size(), ")");
  KX_CHECK(!bias.defined() || (bias.dtype == a.dtype && bias.dim() == 1 && bias.shape[0] == n), Shape,
           "matmul_packed: bias must be a ", dtype_name(a.dtype), " vector [", n, "], got ",
           bias.defined() ? shape_str(bias.shape) : "");
  Shape out_shape = a.shape;
  out_shape.back() = n;
  Tensor y = empty(out_shape, a.dtype, a.device());
  const int64_t rows = a.numel() / k;
  if (rows == 0) return {y};
  with_float32(a, bias, y, [&](const float* A, const float* bias_row, float* C) {
    const Weight weight{{nullptr, 0, 0}, packed.raw(), w};
    product("matmul_packed", Mat{A, k, 1}, weight, bias_row, C, n, rows, k, n, false);
  });
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(matmul, CPU, matmul_cpu);
KX_REGISTER_KERNEL(matmul_pack, CPU, matmul_pack_cpu);
KX_REGISTER_KERNEL(matmul_packed, CPU, matmul_packed_cpu);

}  // namespace kx
