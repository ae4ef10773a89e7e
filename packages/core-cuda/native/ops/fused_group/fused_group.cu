// The CUDA executor of fused groups (FUSION.md §4, group_device.h): a group without a reduction
// whose inputs the PTX writer can read (float32 streams, rows along the innermost dims, one-element
// inputs as rows of period 1; uint8 masks likewise) and whose ops it writes runs as its own PTX
// (ptx_writer.h), loaded with cudaLibraryLoadData once per structure and device and launched on
// the device's stream; every other group, and every group under KEXUE_FUSION=interp or when the
// load failed (the reason counted in fusion_cuda_stats, never an error), runs in the precompiled
// interpreter kernels below, which evaluate each element with group_eval.h (the CPU reference's
// code). Written without a GPU to run on: nothing here has run on one yet.
#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "ops/fused_group/group_device.h"
#include "ops/fused_group/group_eval.h"
#include "ops/fused_group/ptx_writer.h"

namespace kx {
namespace {

using cuda::kThreads;

// ---- the interpreter kernels ---------------------------------------------------------------------

// A group without a reduction: a grid-stride loop over the elements, the registers in local memory.
__global__ void group_interp_kernel(GroupEvalData g, int64_t n) {
  float reg[kMaxGroupRegisters];
  for (int64_t i = cuda::thread_index(); i < n; i += cuda::grid_stride()) group_eval(g, 0, g.size, 0, i, reg, 0.0f);
}

constexpr int kReduceThreads = 256;

// A group with a reduction: a block per reduced row (grid-stride over rows). Thread t folds the
// prologue's values at t, t + 256, ... in order, the block combines the 256 partials by a fixed
// tree in shared memory (so the bits depend only on the shape), and thread 0 runs the epilogue.
__global__ void __launch_bounds__(kReduceThreads) group_reduce_kernel(GroupEvalData g, int64_t outer) {
  __shared__ float partial[kReduceThreads];
  float reg[kMaxGroupRegisters];
  const int32_t summed = g.code[g.reduce_at].a;
  const int t = (int)threadIdx.x;
  for (int64_t r = blockIdx.x; r < outer; r += gridDim.x) {
    float acc = group_identity(g.red_op);
    for (int64_t j = t; j < g.rows; j += kReduceThreads) {
      group_eval(g, 0, g.reduce_at, 0, r * g.rows + j, reg, 0.0f);
      acc = group_combine(g.red_op, acc, reg[summed]);
    }
    partial[t] = acc;
    __syncthreads();
    for (int s = kReduceThreads / 2; s > 0; s >>= 1) {
      if (t < s) partial[t] = group_combine(g.red_op, partial[t], partial[t + s]);
      __syncthreads();
    }
    if (t == 0) group_eval(g, g.reduce_at, g.size, 1, r, reg, group_finish(g, partial[0]));
    __syncthreads();  // (partial is rewritten for the next row)
  }
}

void run_interpreted(const GroupProgram& p, const Inputs& in, const std::vector<Tensor>& outs, int device) {
  const GroupEvalTable table = group_eval_table(p, in);
  // The table rides in a device buffer of the caching allocator, staged without a wait; dropping it
  // after the launch is safe (its block only goes to work queued later on the same stream).
  const size_t bytes = table.words.size() * sizeof(int64_t);
  Tensor buffer = empty({(int64_t)bytes}, DType::UInt8, Device{DeviceType::CUDA, device});
  cuda::copy_to_device(buffer.raw(), table.words.data(), bytes, device);
  const GroupEvalData g = group_eval_data(p, table, static_cast<const int64_t*>(buffer.raw()), in, outs);
  cudaStream_t stream = cuda::stream(device);
  if (p.reduce_at < 0) {
    const int64_t n = numel_of(p.shape);
    group_interp_kernel<<<cuda::blocks_for(n, kThreads), kThreads, 0, stream>>>(g, n);
  } else {
    const int64_t outer = numel_of(p.reduction.shape);
    const unsigned grid = (unsigned)std::min<int64_t>(outer, int64_t(1) << 20);
    group_reduce_kernel<<<grid, kReduceThreads, 0, stream>>>(g, outer);
  }
  cuda::check_launch("fused group (interpreter)");
}

// ---- the PTX path --------------------------------------------------------------------------------

// How the PTX kernel reads each input (with a row's period), or nothing when an input is neither a
// stream over the iteration shape, a row along its innermost dims, nor one element.
std::optional<std::vector<PtxRead>> ptx_reads(const GroupProgram& p, const Inputs& in, std::vector<int64_t>* periods) {
  std::vector<PtxRead> reads;
  const int64_t n = numel_of(p.shape);
  for (size_t k = 0; k < in.size(); ++k) {
    periods->push_back(0);
    if (!p.input_loads[k]) {
      reads.push_back(PtxRead::Unused);
      continue;
    }
    const Tensor& t = in[k];
    const bool byte = t.dtype == DType::UInt8;
    const int64_t m = t.numel();
    if (m == n) {  // (broadcasting with as many elements: the same shape up to 1s)
      reads.push_back(byte ? PtxRead::UInt8 : PtxRead::Float32);
      continue;
    }
    size_t lead = 0;
    while (lead < t.shape.size() && t.shape[lead] == 1) ++lead;
    const size_t rank = t.shape.size() - lead;
    const bool row = m == 1 || std::equal(t.shape.begin() + (std::ptrdiff_t)lead, t.shape.end(),
                                          p.shape.end() - (std::ptrdiff_t)rank);
    if (!row) return std::nullopt;
    reads.push_back(byte ? PtxRead::UInt8Row : PtxRead::Float32Row);
    periods->back() = m;
  }
  return reads;
}

// A PTX kernel loaded for one structure on one device; kernel null where the writer does not
// support the group or the load failed (remembered, so a structure is tried once per device).
struct PtxKernel {
  cudaLibrary_t library = nullptr;
  cudaKernel_t kernel = nullptr;
};

std::mutex ptx_mu;
std::map<std::string, PtxKernel> ptx_cache;

// What the text depends on, bytewise: the device, the reads, the registers, the outputs and every
// instruction's fields (the element count and periods are launch parameters, not part of it).
std::string ptx_key(int device, const GroupProgram& p, const std::vector<PtxRead>& reads) {
  std::string key;
  const auto put = [&](const void* v, size_t n) { key.append(static_cast<const char*>(v), n); };
  const int32_t outputs = (int32_t)p.outputs.size();
  put(&device, sizeof device);
  put(&p.registers, sizeof p.registers);
  put(&outputs, sizeof outputs);
  for (PtxRead r : reads) key.push_back((char)r);
  for (const GroupInstr& ins : p.code) {
    put(&ins.op, sizeof ins.op);
    put(&ins.fn, sizeof ins.fn);
    for (const int32_t* f : {&ins.dst, &ins.a, &ins.b, &ins.c, &ins.output}) put(f, sizeof *f);
    put(&ins.imm, sizeof ins.imm);
  }
  return key;
}

// Loads PTX text into the device's context (the JIT runs in cudaFuncGetAttributes, which needs the
// kernel in this context); on failure the reason, with the JIT's log, and no error left pending.
PtxKernel load_ptx(const std::string& text, int device, std::string* failure) {
  cuda::stream(device);  // (makes the device current)
  char log[2048] = {};
  cudaJitOption options[] = {cudaJitErrorLogBuffer, cudaJitErrorLogBufferSizeBytes};
  void* values[] = {log, reinterpret_cast<void*>(static_cast<uintptr_t>(sizeof log))};
  PtxKernel k;
  const char* step = "cudaLibraryLoadData";
  cudaError_t err = cudaLibraryLoadData(&k.library, text.c_str(), options, values, 2, nullptr, nullptr, 0);
  if (err == cudaSuccess) {
    step = "cudaLibraryGetKernel";
    err = cudaLibraryGetKernel(&k.kernel, k.library, kPtxGroupEntry);
  }
  if (err == cudaSuccess) {
    step = "cudaFuncGetAttributes";
    cudaFuncAttributes attributes;
    err = cudaFuncGetAttributes(&attributes, reinterpret_cast<const void*>(k.kernel));
  }
  if (err == cudaSuccess) return k;
  *failure = std::string("cuda:") + std::to_string(device) + ": " + step + ": " + cudaGetErrorName(err) + " (" +
             cudaGetErrorString(err) + ")" + (log[0] ? std::string(": ") + log : std::string());
  (void)cudaGetLastError();  // a load error is not sticky: clear it, so the next launch check does not report it
  if (k.library) (void)cudaLibraryUnload(k.library);
  return {};
}

// The kernel for p read as `reads` on `device`, loading it at the first run of its structure.
cudaKernel_t ptx_kernel(int device, const GroupProgram& p, const std::vector<PtxRead>& reads) {
  const std::string key = ptx_key(device, p, reads);
  std::lock_guard<std::mutex> lock(ptx_mu);
  auto it = ptx_cache.find(key);
  if (it == ptx_cache.end()) {
    PtxKernel k;
    if (const std::optional<std::string> text = group_ptx(p, reads)) {
      std::string failure;
      k = load_ptx(*text, device, &failure);
      count_ptx_load(k.kernel ? nullptr : &failure);
    }
    it = ptx_cache.emplace(key, k).first;
  }
  return it->second.kernel;
}

// Launches a loaded group kernel: parameters n, then per input its pointer (and a row's period),
// then the outputs' pointers, all 64-bit (the reads used here have no f32 scalar parameter).
void launch_ptx(cudaKernel_t kernel, const GroupProgram& p, const Inputs& in, const std::vector<PtxRead>& reads,
                const std::vector<int64_t>& periods, const std::vector<Tensor>& outs, int device) {
  std::array<uint64_t, 1 + 2 * kMaxGroupInputs + kMaxGroupOutputs> slots{};
  std::array<void*, slots.size()> args{};
  size_t count = 0;
  const auto param = [&](uint64_t v) {
    slots[count] = v;
    args[count] = &slots[count];
    ++count;
  };
  const int64_t n = numel_of(p.shape);
  param((uint64_t)n);
  for (size_t k = 0; k < in.size(); ++k) {
    if (reads[k] == PtxRead::Unused) continue;
    param((uint64_t)(uintptr_t)in[k].raw());
    if (reads[k] == PtxRead::Float32Row || reads[k] == PtxRead::UInt8Row) param((uint64_t)periods[k]);
  }
  for (const Tensor& t : outs) param((uint64_t)(uintptr_t)t.raw());
  cuda::check(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(cuda::blocks_for(n, kThreads)),
                               dim3(kThreads), args.data(), 0, cuda::stream(device)),
              "fused group (PTX) launch");
  cuda::check_launch("fused group (PTX)");
}

std::vector<Tensor> run_fused_group_cuda(const GroupProgram& p, const Inputs& in) {
  check_group_inputs(p, in);
  const Device device = in[0].device();
  std::vector<Tensor> outs;
  for (size_t k = 0; k < p.outputs.size(); ++k) outs.push_back(empty(p.output_shape(k), p.dtype, device));
  const int64_t n = numel_of(p.shape), outer = p.reduce_at >= 0 ? numel_of(p.reduction.shape) : 0;
  if (n == 0 && outer == 0) return outs;
  if (!fusion_interp_forced() && p.reduce_at < 0 && p.dtype == DType::Float32) {
    std::vector<int64_t> periods;
    if (const std::optional<std::vector<PtxRead>> reads = ptx_reads(p, in, &periods)) {
      if (cudaKernel_t kernel = ptx_kernel(device.index, p, *reads)) {
        launch_ptx(kernel, p, in, *reads, periods, outs, device.index);
        count_cuda_group(true);
        return outs;
      }
    }
  }
  run_interpreted(p, in, outs, device.index);
  count_cuda_group(false);
  return outs;
}

[[maybe_unused]] const bool registered = (register_cuda_group_runner(run_fused_group_cuda), true);

}  // namespace
}  // namespace kx
