#include "cpu/openblas.h"

#include <cblas.h>

namespace kx::cpu::openblas {
namespace {

// Runs as the addon loads, after OpenBLAS's own initialisation (a library's dependencies initialise
// first): the workers that initialisation started, if any, never get work and go to sleep.
struct OnCallingThread {
  OnCallingThread() { openblas_set_num_threads(1); }
} on_calling_thread;

}  // namespace

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
              (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

}  // namespace kx::cpu::openblas
