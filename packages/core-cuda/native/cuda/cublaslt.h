// cuBLASLt, opened at run time: the build needs no cuBLAS headers or libraries, and a machine with
// only the CUDA runtime still works (matmul then runs our own kernels, ops/matmul/kernels.cuh).
//
// The library is looked for, first hit wins: $KEXUE_CUBLASLT (a library file, or a folder holding
// one; "0" or "off" turns cuBLASLt off), then libcublasLt.so.13, .so.12 and .so by the dynamic
// loader's own search (LD_LIBRARY_PATH, the ld cache), then the CUDA toolkit's and the pip wheels'
// usual folders (nvidia/cublas/lib, and CUDA 13 wheels' nvidia/cu13/lib, under Python's site-packages).
//
// Host code only, with no dependency on tensors or the allocator, so the kernel lab
// (dev/kernels/matmul.cu) links it as it is.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "kx/dtype.h"

namespace kx::cuda::lt {

enum class Epilogue {
  None,
  Bias,      // + bias[n] on every output row
  BiasGelu,  // gelu(· + bias): cuBLASLt's GELU is the tanh approximation (kx::gelu_tanh), not the erf form
};

// One row-major product c[batch][m, n] = op(a)[m, k] · op(b)[k, n] (+ epilogue), with kexue's
// conventions: op(a) = a^T when ta (a stored [k, m]), likewise b; strides in elements between
// batches (0: the operand is shared by every batch); bias a [n] row of the same dtype.
struct Gemm {
  DType dtype;
  bool ta, tb;
  int64_t m, n, k;
  const void* a;
  const void* b;
  void* c;
  const void* bias = nullptr;
  Epilogue epilogue = Epilogue::None;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
};

// Whether the library was found and has every function used (opens it on the first call).
bool available();
// Where it was found, with its version, or why it was not (for buildInfo and the lab).
std::string describe();

// Runs the product on `stream` (device `device` must be current). float32 computes in exact float32
// (CUBLAS_COMPUTE_32F, no TF32); half types multiply on tensor cores with float32 accumulation.
// `workspace(bytes)` returns device scratch valid until the product has run on the stream. Returns
// false, having launched nothing, when cuBLASLt is unavailable or has no algorithm for this product;
// the caller then runs its own kernel.
bool matmul(const Gemm& g, const std::function<void*(size_t)>& workspace, cudaStream_t stream, int device);

}  // namespace kx::cuda::lt
