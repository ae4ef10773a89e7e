#include "cpu/onednn.h"

#include <omp.h>

#include <cstdint>
#include <vector>

#include "kx/error.h"

namespace kx::cpu::onednn {

const dnnl::engine& engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (alpha == 0.0f || k == 0) {
    // BLAS's rule, which dnnl_sgemm does not keep: c = beta·c without reading a or b (scratch
    // buffers are c here, and their old contents must not leak through 0·NaN)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  use_calling_thread_only();
  const dnnl_status_t status = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) fail(Code::Internal, "sgemm: oneDNN failed (status ", (int)status, ")");
}

dnnl::memory scratchpad(const dnnl::memory::desc& desc) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < desc.get_size()) buffer.resize(desc.get_size());
  return dnnl::memory(desc, engine(), buffer.empty() ? nullptr : buffer.data());
}

std::string version() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

void fail_from(const char* what, const dnnl::error& e) {
  fail(Code::Internal, what, ": oneDNN failed (status ", (int)e.status, "): ", e.what());
}

void use_calling_thread_only() {
  // per calling thread: the pool's workers and each JS thread are told once
  if (omp_get_max_threads() != 1) omp_set_num_threads(1);
}

void execute(const char* what, const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  checked(what, [&] {
    thread_local dnnl::stream stream(engine());
    p.execute(stream, args);
    stream.wait();
    return 0;
  });
}

}  // namespace kx::cpu::onednn
