// OpenBLAS (Debian: libopenblas-dev; its library carries LAPACK too, for ops/linalg), held to the
// calling thread: the addon sets one OpenBLAS thread as it loads (openblas.cpp), so every call runs
// on the thread that makes it and kexue's pool runs the parts (docs/DESIGN.md, Threading).
#pragma once
#include <cstdint>

namespace kx::cpu::openblas {

// c = op(a)·op(b) + beta·c, row-major float32, on the calling thread: a [m, k] (stored [k, m] when
// ta, leading dimension lda), b [k, n] (stored [n, k] when tb, ldb), c [m, n] (ldc). The caller
// keeps every size within a 32-bit int (OpenBLAS's LP64 interface).
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace kx::cpu::openblas
