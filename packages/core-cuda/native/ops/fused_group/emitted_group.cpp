// The emitter's driver (executor.h): chooses the executor, reads each input as a stream or a
// scalar, finds the group's kernel (the program's own after its first run, else in a process-wide
// cache keyed by structure), and runs it over the output range split over the thread pool.
//
// A stream input is contiguous or repeats along the innermost dims (a [cols] bias over [rows,
// cols]): element i reads element i mod m of its m. A float32 column is broadcast along the
// innermost dims (a [rows, 1] statistic over [rows, cols]): element i reads element i / w, w the
// size of the dims it is broadcast along. Periods and widths are sizes of the iteration shape's
// suffixes, which divide each other, so the range is cut at multiples of the smallest and each cut
// is one kernel call with every stream's pointer at its own column and every column's at its row. An AVX-512 kernel masks the last
// partial vector of a call; with AVX2, the last few elements of a cut run as one vector through
// zero-padded copies.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cpu/thread_pool.h"
#include "kx/simd.h"
#include "ops/fused_group/emitter.h"
#include "ops/fused_group/executor.h"
#include "ops/fused_group/group_device.h"

namespace kx {
namespace {

// The shortest period a group's streams may have: each row is a kernel call (with AVX2 also a
// padded tail), so rows shorter than this are left to the interpreter, which gathers them a block
// at a time (a guess, not a measured break-even).
constexpr int64_t kMinPeriod = 64;
// Elements a contiguous range is cut into for the pool (a multiple of every vector width).
constexpr int64_t kCut = 1024;

std::atomic<int64_t> groups_emitted{0};
std::atomic<int64_t> groups_interpreted{0};

// The ISA the emitter writes, or nothing. Read at the first group run, after the addon's load
// capped the vector runs' target by KEXUE_SIMD.
std::optional<KernelIsa> kernel_isa() {
  static const std::optional<KernelIsa> isa = []() -> std::optional<KernelIsa> {
    if (fusion_interp_forced() || !emitter_built()) return std::nullopt;
    const std::string target = simd::target_name();
    if (target.rfind("AVX3", 0) == 0) return KernelIsa::Avx512;
    if (target == "AVX2") return KernelIsa::Avx2;
    return std::nullopt;
  }();
  return isa;
}

// The kernels made so far by structure (null: a structure the emitter does not support). Never
// freed: a process sees few structures, and sizes are not part of the key.
struct KernelCache {
  std::mutex mutex;
  std::unordered_map<std::string, std::unique_ptr<GroupKernel>> kernels;
  int64_t made = 0;
};
KernelCache& kernel_cache() {
  static KernelCache cache;
  return cache;
}

// The cache key: the layout and every instruction's fields but its immediate.
std::string kernel_key(const GroupProgram& p, const KernelLayout& layout) {
  std::string key;
  key.reserve(1 + layout.reads.size() + p.code.size() * 6 * sizeof(int32_t));
  key.push_back((char)layout.isa);
  key.push_back((char)layout.dtype);
  for (InputRead r : layout.reads) key.push_back((char)r);
  for (const GroupInstr& ins : p.code) {
    const int32_t fields[6] = {(int32_t)ins.op | (int32_t)ins.fn << 8, ins.dst, ins.a, ins.b, ins.c, ins.output};
    key.append(reinterpret_cast<const char*>(fields), sizeof fields);
  }
  return key;
}

bool same_layout(const KernelLayout& a, const KernelLayout& b) {
  return a.isa == b.isa && a.dtype == b.dtype && a.reads == b.reads;
}

}  // namespace

// A program's kernel for the layout of its first run (a program is replayed with its inputs'
// shapes and dtypes, so every run has that layout; another is looked up in the cache each time).
// Written once, under the cache's lock, before `ready` is published; never changed after.
struct GroupKernelMemo {
  std::atomic<bool> ready{false};
  KernelLayout layout;
  const GroupKernel* kernel = nullptr;  // null: the emitter does not support the program
};

std::shared_ptr<GroupKernelMemo> make_group_kernel_memo() { return std::make_shared<GroupKernelMemo>(); }

namespace {

// Program p's kernel for `layout` (null: not emittable): its memo's, else the cache's by
// structure (made on the first miss), memoized on p's first run.
const GroupKernel* find_kernel(const GroupProgram& p, const KernelLayout& layout) {
  GroupKernelMemo& memo = p.kernel.memo();
  const bool ready = memo.ready.load(std::memory_order_acquire);
  if (ready && same_layout(memo.layout, layout)) return memo.kernel;
  KernelCache& cache = kernel_cache();
  std::string key = kernel_key(p, layout);
  std::lock_guard<std::mutex> lock(cache.mutex);
  auto it = cache.kernels.find(key);
  if (it == cache.kernels.end()) {
    it = cache.kernels.emplace(std::move(key), emit_group_kernel(p, layout)).first;
    if (it->second) ++cache.made;
  }
  if (!memo.ready.load(std::memory_order_relaxed)) {
    memo.layout = layout;
    memo.kernel = it->second.get();
    memo.ready.store(true, std::memory_order_release);
  }
  return it->second.get();
}

// How a kernel reads a stream of dtype t (a floating input has the group's dtype, check_group_inputs).
InputRead stream_read(DType t) {
  switch (t) {
    case DType::Float16: return InputRead::Float16;
    case DType::BFloat16: return InputRead::BFloat16;
    case DType::UInt8: return InputRead::UInt8;
    default: return InputRead::Float32;
  }
}

// Whether `shape`, its leading 1s dropped, is the innermost dims of `of` (so element i of a tensor
// broadcast from `shape` to `of` is element i mod numel(shape)).
bool is_suffix(const Shape& shape, const Shape& of) {
  size_t lead = 0;
  while (lead < shape.size() && shape[lead] == 1) ++lead;
  const size_t rank = shape.size() - lead;
  return rank <= of.size() && std::equal(shape.begin() + (std::ptrdiff_t)lead, shape.end(), of.end() - (std::ptrdiff_t)rank);
}

// The width w when `shape`, aligned to the right of `of`, equals `of` on its outer dims and is 1 on
// the rest (so element i of a tensor broadcast from `shape` to `of` is element i / w), else 0.
int64_t column_width(const Shape& shape, const Shape& of) {
  if (shape.size() > of.size()) return 0;
  const size_t pad = of.size() - shape.size();
  size_t outer = of.size();
  while (outer > pad && shape[outer - 1 - pad] == 1) --outer;
  int64_t width = 1;
  for (size_t d = 0; d < of.size(); ++d) {
    const int64_t dim = d < pad ? 1 : shape[d - pad];
    if (d < outer && d >= pad && dim != of[d]) return 0;
    if (d < pad && of[d] != 1) return 0;  // a leading dim the input lacks would repeat it
    if (d >= outer) width *= of[d];
  }
  return width;
}

// One run: the kernel, its constants, and each stream's base, element size and period.
struct EmittedRun {
  const GroupKernel* kernel;
  std::vector<float> constants;
  std::array<const char*, kKernelStreams> base{};
  std::array<int64_t, kKernelStreams> element_bytes{};
  std::array<int64_t, kKernelStreams> period{};
  std::array<int64_t, kKernelStreams> width{};  // a column's (0: a stream)

  // Elements [begin, end) of the output range, none crossing a multiple of a period or a width.
  void run_cut(int64_t begin, int64_t end) const {
    std::array<const char*, kKernelStreams> at{};
    for (size_t s = 0; s < (size_t)kKernelStreams; ++s) {
      if (!base[s]) continue;
      at[s] = base[s] + (width[s] ? begin / width[s] : begin % period[s]) * element_bytes[s];
    }
    if (kernel->masks_tail) return kernel->fn(at.data(), constants.data(), end - begin);
    const int64_t lanes = kernel->lanes;
    const int64_t whole = (end - begin) / lanes * lanes;
    if (whole > 0) kernel->fn(at.data(), constants.data(), whole);
    if (whole < end - begin) run_tail(at, whole, end - begin - whole);
  }

  // The last `rest` (< lanes) elements, from `from` on: one vector over zero-padded copies (for a
  // kernel that does not mask its tail).
  void run_tail(const std::array<const char*, kKernelStreams>& at, int64_t from, int64_t rest) const {
    alignas(64) char pad[kKernelStreams][64] = {};
    std::array<const char*, kKernelStreams> padded{};
    for (int s = 0; s < kKernelStreams; ++s) {
      if (!at[(size_t)s]) continue;
      if (width[(size_t)s]) {  // a column reads its one element in place
        padded[(size_t)s] = at[(size_t)s];
        continue;
      }
      padded[(size_t)s] = pad[s];
      if (s < kMaxGroupInputs)
        std::memcpy(pad[s], at[(size_t)s] + from * element_bytes[(size_t)s], (size_t)(rest * element_bytes[(size_t)s]));
    }
    kernel->fn(padded.data(), constants.data(), kernel->lanes);
    for (int s = kMaxGroupInputs; s < kKernelStreams; ++s)
      if (at[(size_t)s])
        std::memcpy(const_cast<char*>(at[(size_t)s]) + from * element_bytes[(size_t)s], pad[s],
                    (size_t)(rest * element_bytes[(size_t)s]));
  }
};

}  // namespace

const char* fusion_executor_name() {
  const std::optional<KernelIsa> isa = kernel_isa();
  return !isa ? "interp" : *isa == KernelIsa::Avx512 ? "avx512" : "avx2";
}

FusionStats fusion_stats() {
  KernelCache& cache = kernel_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return {groups_emitted.load(), groups_interpreted.load(), cache.made};
}

std::optional<std::vector<Tensor>> run_emitted_group(const GroupProgram& p, const Inputs& in) {
  const std::optional<KernelIsa> isa = kernel_isa();
  const int64_t n = numel_of(p.shape);
  const auto interpret = [] {
    ++groups_interpreted;
    return std::nullopt;
  };
  if (!isa || p.reduce_at >= 0) return interpret();

  EmittedRun run;
  KernelLayout layout;
  layout.isa = *isa;
  layout.dtype = p.dtype;
  run.constants.assign(kConstImms + p.code.size(), 0.0f);
  std::memcpy(run.constants.data(), kernel_fixed_constants().data(), sizeof(uint32_t) * kConstInputs);
  for (size_t at = 0; at < p.code.size(); ++at) run.constants[kConstImms + at] = p.code[at].imm;
  int64_t shortest = std::max<int64_t>(n, 1);
  for (int k = 0; k < p.inputs; ++k) {
    if (!p.input_loads[(size_t)k]) continue;
    const Tensor& t = in[(size_t)k];
    const int64_t m = t.numel();
    if (m == 1) {
      layout.reads[(size_t)k] = InputRead::Scalar;
      run.constants[kConstInputs + k] = element_as_float(t.raw(), t.dtype, 0);
      continue;
    }
    run.base[(size_t)k] = static_cast<const char*>(t.raw());
    run.element_bytes[(size_t)k] = (int64_t)dtype_size(t.dtype);
    if (is_suffix(t.shape, p.shape)) {
      layout.reads[(size_t)k] = stream_read(t.dtype);
      run.period[(size_t)k] = m;
      shortest = std::min(shortest, m);
      continue;
    }
    const int64_t w = t.dtype == DType::Float32 ? column_width(t.shape, p.shape) : 0;
    if (w == 0) return interpret();
    layout.reads[(size_t)k] = InputRead::Column;
    run.width[(size_t)k] = w;
    shortest = std::min(shortest, w);
  }
  if (shortest < n && shortest < kMinPeriod) return interpret();
  run.kernel = find_kernel(p, layout);
  if (!run.kernel) return interpret();

  std::vector<Tensor> outs;
  for (size_t k = 0; k < p.outputs.size(); ++k) {
    outs.push_back(empty(p.shape, p.dtype, Device{DeviceType::CPU, 0}));
    const size_t s = kMaxGroupInputs + k;
    run.base[s] = static_cast<const char*>(outs.back().raw());
    run.element_bytes[s] = (int64_t)dtype_size(p.dtype);
    run.period[s] = std::max<int64_t>(n, 1);
  }
  ++groups_emitted;
  if (n == 0) return outs;
  // Rows when some stream repeats, else cuts of kCut; a task is about 2^18 instruction-elements
  // (the emitted loop runs an instruction on a vector in about a cycle).
  const bool rows = shortest < n;
  const int64_t cut = rows ? shortest : kCut;
  const int64_t cuts = (n + cut - 1) / cut;
  const int64_t grain = std::max<int64_t>(1, cpu::grain_for((int64_t)p.code.size(), 1 << 18) / cut);
  cpu::parallel_for(cuts, grain, [&](int64_t first, int64_t last) {
    if (!rows) return run.run_cut(first * cut, std::min(n, last * cut));
    for (int64_t c = first; c < last; ++c) run.run_cut(c * cut, (c + 1) * cut);
  });
  return outs;
}

}  // namespace kx
