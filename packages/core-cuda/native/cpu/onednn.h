// oneDNN (Debian: libdnnl-dev) runs the CPU's matrix products: its kernels are generated when a
// product's shape is first seen, for the best instruction set the CPU has (AVX-512, AVX2, ...), so
// one binary runs each machine's own kernels, and it can keep a weight packed in its kernels' layout
// (pre-packed weights, ops/matmul). Each call runs on its calling thread alone: the pool splits a
// product into parts (ops/matmul), so kexue has one set of threads and OpenMP's team, whose idle
// threads would spin beside the pool's (or, told to sleep, take ~30 us to wake for every product),
// never starts. This module also turns oneDNN's errors into kx errors.
#pragma once
#include <string>
#include <unordered_map>

#include <dnnl.hpp>

namespace kx::cpu::onednn {

const dnnl::engine& engine();

// c = alpha·op(a)·op(b) + beta·c, row-major, on the calling thread (oneDNN's dnnl_sgemm): the small
// products inside other kernels' parallel loops (attention's blocks). E_INTERNAL if oneDNN fails.
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Memory for a primitive's scratchpad (primitives made with scratchpad_mode::user), in a buffer of
// the calling thread's that grows to the largest size asked: valid until this thread's next call.
dnnl::memory scratchpad(const dnnl::memory::desc& desc);

// "oneDNN <major>.<minor>.<patch>", the library loaded at run time.
std::string version();

// Runs `p` on the calling thread alone and waits for it. A dnnl::error becomes E_INTERNAL naming
// `what`.
void execute(const char* what, const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);

[[noreturn]] void fail_from(const char* what, const dnnl::error& e);

// Sets the calling thread's OpenMP thread count to one (a per-thread setting), before oneDNN plans
// a primitive for it or runs one.
void use_calling_thread_only();

// Calls make() on the calling thread alone and turns a dnnl::error it throws (a shape or layout
// oneDNN has no kernel for) into E_INTERNAL naming `what`.
template <class F>
auto checked(const char* what, F&& make) -> decltype(make()) {
  use_calling_thread_only();
  try {
    return make();
  } catch (const dnnl::error& e) {
    fail_from(what, e);
  }
}

}  // namespace kx::cpu::onednn
