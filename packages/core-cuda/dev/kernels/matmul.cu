// Kernel lab: matrix products. Validates each version against a CPU reference on small and awkward
// shapes (edge tiles, odd k, every transpose, bias, broadcast batches), then times the BERT-base
// shapes and prints ms, TFLOP/s and the ratio to cuBLASLt (when its library opens).
//
// Versions: "ours" = ops/matmul/kernels.cuh (SIMT float32; tensor-core float16 / bfloat16),
// "cublaslt" = cuda/cublaslt.cu (the run-time loader the addon uses).
//
//   nvcc -std=c++17 -O3 --expt-relaxed-constexpr -arch=sm_90 -I native/include -I native \
//        dev/kernels/matmul.cu native/cuda/cublaslt.cu -o /tmp/matmul-lab -ldl && /tmp/matmul-lab
//
// nvcc: native/cuda/cublaslt.cu -ldl
// Each result is also printed as one `RESULT {json}` line for scripts. Exit status 1 when a
// validation fails.
#include <cuda_runtime.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/cublaslt.h"
#include "kx/dtype.h"
#include "ops/matmul/kernels.cuh"

namespace {

using kx::DType;

#define CHECK_CUDA(call)                                                                    \
  do {                                                                                      \
    const cudaError_t err_ = (call);                                                        \
    if (err_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
      std::exit(2);                                                                         \
    }                                                                                       \
  } while (0)

template <class T> const char* type_name();
template <> const char* type_name<float>() { return "f32"; }
template <> const char* type_name<kx::half_t>() { return "f16"; }
template <> const char* type_name<kx::bfloat16_t>() { return "bf16"; }
template <class T> DType dtype_of();
template <> DType dtype_of<float>() { return DType::Float32; }
template <> DType dtype_of<kx::half_t>() { return DType::Float16; }
template <> DType dtype_of<kx::bfloat16_t>() { return DType::BFloat16; }

// Normalised MSE bound per dtype against a float64 reference of the same (rounded) inputs: the
// output's own rounding dominates for the half types.
template <class T> double nmse_bound() {
  return std::is_same_v<T, float> ? 1e-7 : std::is_same_v<T, kx::half_t> ? 1e-6 : 1e-5;
}

uint64_t rng_state = 0x9e3779b97f4a7c15ull;
float uniform() {  // [-1, 1)
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) * (1.0 / (1ull << 23))) - 1.0f;
}

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t n) { CHECK_CUDA(cudaMalloc(&ptr, (n ? n : 1) * sizeof(T))); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Random values rounded to T, on the host (as T and widened back) and on the device.
template <class T>
struct Operand {
  std::vector<T> host;
  std::vector<double> values;
  DeviceBuffer<T> dev;
  explicit Operand(size_t n) : host(n), values(n), dev(n) {
    for (size_t i = 0; i < n; ++i) {
      host[i] = kx::from_float<T>(uniform());
      values[i] = kx::to_float(host[i]);
    }
    CHECK_CUDA(cudaMemcpy(dev.ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
};

struct Case {
  int m, n, k;
  bool ta, tb, bias;
  int batch;              // 1: a single product
  bool a_shared, b_shared;  // with batch > 1: that operand is one matrix for every batch (stride 0)
};

enum class Version { Ours, CublasLt };
const char* version_name(Version v) { return v == Version::Ours ? "ours" : "cublaslt"; }

// Runs one product; false when the version cannot do it (cuBLASLt refusing a shape).
template <class T>
bool run(Version v, const Case& c, const T* a, const T* b, const T* bias, T* out, void* workspace,
         size_t workspace_bytes) {
  const int64_t stride_a = c.batch > 1 && !c.a_shared ? (int64_t)c.m * c.k : 0;
  const int64_t stride_b = c.batch > 1 && !c.b_shared ? (int64_t)c.k * c.n : 0;
  if (v == Version::CublasLt) {
    kx::cuda::lt::Gemm g{dtype_of<T>(), c.ta, c.tb, c.m, c.n, c.k, a, b, out};
    g.bias = c.bias ? bias : nullptr;
    g.epilogue = c.bias ? kx::cuda::lt::Epilogue::Bias : kx::cuda::lt::Epilogue::None;
    g.batch = c.batch;
    g.stride_a = stride_a;
    g.stride_b = stride_b;
    g.stride_c = (int64_t)c.m * c.n;
    auto scratch = [&](size_t bytes) { return bytes <= workspace_bytes ? workspace : nullptr; };
    return kx::cuda::lt::matmul(g, scratch, 0, 0);
  }
  kx::gemm::Args<T> p{a, b, c.bias ? bias : nullptr, out, c.m, c.n, c.k, c.ta, c.tb, {}};
  if (c.batch > 1) {
    p.batch.rank = 1;
    p.batch.count = c.batch;
    p.batch.size[0] = c.batch;
    p.batch.a_stride[0] = stride_a;
    p.batch.b_stride[0] = stride_b;
  }
  kx::gemm::gemm(p, 0);
  CHECK_CUDA(cudaGetLastError());
  return true;
}

std::string case_name(const Case& c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s%s %dx%dx%d%s%s", c.ta ? "T" : "N", c.tb ? "T" : "N", c.m, c.n, c.k,
                c.bias ? " +bias" : "",
                c.batch > 1 ? (c.a_shared ? " batch(a shared)" : c.b_shared ? " batch(b shared)" : " batch") : "");
  return buf;
}

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

template <class T>
bool validate(Version v, const Case& c, void* workspace) {
  const int batches = c.batch;
  Operand<T> a((size_t)(c.a_shared ? 1 : batches) * c.m * c.k), b((size_t)(c.b_shared ? 1 : batches) * c.k * c.n),
      bias(c.n);
  const size_t out_n = (size_t)batches * c.m * c.n;
  DeviceBuffer<T> out(out_n);
  if (!run<T>(v, c, a.dev.ptr, b.dev.ptr, bias.dev.ptr, out.ptr, workspace, kWorkspaceBytes)) {
    std::printf("  %-8s %-5s %-34s refused (skipped)\n", version_name(v), type_name<T>(), case_name(c).c_str());
    return true;
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<T> got(out_n);
  CHECK_CUDA(cudaMemcpy(got.data(), out.ptr, out_n * sizeof(T), cudaMemcpyDeviceToHost));
  double err = 0, ref_sq = 0;
  for (int t = 0; t < batches; ++t) {
    const double* A = a.values.data() + (c.a_shared ? 0 : (size_t)t * c.m * c.k);
    const double* B = b.values.data() + (c.b_shared ? 0 : (size_t)t * c.k * c.n);
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double s = c.bias ? bias.values[j] : 0.0;
        for (int p = 0; p < c.k; ++p)
          s += A[c.ta ? (size_t)p * c.m + i : (size_t)i * c.k + p] *
               B[c.tb ? (size_t)j * c.k + p : (size_t)p * c.n + j];
        const double y = kx::to_float(got[(size_t)t * c.m * c.n + (size_t)i * c.n + j]);
        err += (y - s) * (y - s);
        ref_sq += s * s;
      }
  }
  const double nmse = ref_sq > 0 ? err / ref_sq : err;
  const bool ok = nmse <= nmse_bound<T>() && std::isfinite(nmse);
  std::printf("  %-8s %-5s %-34s nmse %.2e %s\n", version_name(v), type_name<T>(), case_name(c).c_str(), nmse,
              ok ? "ok" : "FAIL");
  std::printf("RESULT {\"kernel\":\"matmul\",\"check\":\"validate\",\"version\":\"%s\",\"dtype\":\"%s\","
              "\"case\":\"%s\","
              "\"nmse\":%.3e,\"ok\":%s}\n",
              version_name(v), type_name<T>(), case_name(c).c_str(), nmse, ok ? "true" : "false");
  return ok;
}

// Mean ms per product over enough repetitions, or a negative value when the version refuses.
template <class T>
double time_ms(Version v, const Case& c, const T* a, const T* b, const T* bias, T* out, void* workspace) {
  if (!run<T>(v, c, a, b, bias, out, workspace, kWorkspaceBytes)) return -1;
  for (int i = 0; i < 3; ++i) run<T>(v, c, a, b, bias, out, workspace, kWorkspaceBytes);
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  const int reps = 20;
  CHECK_CUDA(cudaEventRecord(start));
  for (int i = 0; i < reps; ++i) run<T>(v, c, a, b, bias, out, workspace, kWorkspaceBytes);
  CHECK_CUDA(cudaEventRecord(stop));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / reps;
}

template <class T>
void benchmark(const Case& c, void* workspace, bool have_lt) {
  Operand<T> a((size_t)c.m * c.k), b((size_t)c.k * c.n), bias(c.n);
  DeviceBuffer<T> out((size_t)c.m * c.n);
  const double flops = 2.0 * c.m * c.n * c.k;
  const double lt =
      have_lt ? time_ms<T>(Version::CublasLt, c, a.dev.ptr, b.dev.ptr, bias.dev.ptr, out.ptr, workspace) : -1;
  const double ours = time_ms<T>(Version::Ours, c, a.dev.ptr, b.dev.ptr, bias.dev.ptr, out.ptr, workspace);
  for (Version v : {Version::Ours, Version::CublasLt}) {
    const double ms = v == Version::Ours ? ours : lt;
    if (ms < 0) continue;
    const double tflops = flops / (ms * 1e-3) / 1e12;
    char ratio[32] = "";
    if (v == Version::Ours && lt > 0) std::snprintf(ratio, sizeof ratio, "%.2fx cuBLASLt", lt / ms);
    std::printf("  %-8s %-5s %-30s %8.3f ms %7.1f TFLOP/s  %s\n", version_name(v), type_name<T>(),
                case_name(c).c_str(), ms, tflops, ratio);
    std::printf("RESULT {\"kernel\":\"matmul\",\"check\":\"time\",\"version\":\"%s\",\"dtype\":\"%s\",\"case\":\"%s\","
                "\"ms\":%.4f,\"tflops\":%.2f,\"vs_cublaslt\":%.3f}\n",
                version_name(v), type_name<T>(), case_name(c).c_str(), ms, tflops,
                v == Version::Ours && lt > 0 ? lt / ms : 1.0);
  }
}

template <class T>
bool validate_all(bool have_lt, void* workspace) {
  std::vector<Case> cases;
  for (int layout = 0; layout < 4; ++layout) {
    const bool ta = layout & 1, tb = layout & 2;
    for (const auto& s : std::vector<std::array<int, 3>>{{1, 1, 1}, {7, 13, 5}, {64, 64, 64}, {129, 65, 33},
                                                         {130, 260, 72}, {256, 384, 200}, {96, 40, 1000}}) {
      cases.push_back({s[0], s[1], s[2], ta, tb, false, 1, false, false});
      cases.push_back({s[0], s[1], s[2], ta, tb, true, 1, false, false});
    }
    cases.push_back({72, 48, 40, ta, tb, true, 3, false, false});
    cases.push_back({72, 48, 40, ta, tb, false, 3, true, false});
    cases.push_back({33, 17, 24, ta, tb, true, 4, false, true});
    // 144 tiles of 128 x 128 (more than the SMs of an A100 or H100/H200): the half types take the
    // BigTile configuration, which no other case reaches.
    cases.push_back({136, 136, 72, ta, tb, true, 36, false, false});
  }
  cases.push_back({8, 8, 0, false, false, true, 1, false, false});  // k = 0: the bias alone
  bool ok = true;
  for (const Case& c : cases) {
    ok = validate<T>(Version::Ours, c, workspace) && ok;
    if (have_lt && c.k > 0) ok = validate<T>(Version::CublasLt, c, workspace) && ok;
  }
  return ok;
}

}  // namespace

int main() {
  int device = 0;
  CHECK_CUDA(cudaSetDevice(device));
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
  std::printf("matmul lab on %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  const bool have_lt = kx::cuda::lt::available();
  std::printf("cuBLASLt: %s\n", kx::cuda::lt::describe().c_str());
  DeviceBuffer<unsigned char> workspace(kWorkspaceBytes);

  std::printf("validation (normalised MSE against a float64 CPU reference)\n");
  bool ok = validate_all<float>(have_lt, workspace.ptr);
  ok = validate_all<kx::half_t>(have_lt, workspace.ptr) && ok;
  ok = validate_all<kx::bfloat16_t>(have_lt, workspace.ptr) && ok;

  std::printf("timing (BERT-base shapes, m x n x k)\n");
  const std::vector<std::array<int, 3>> shapes = {
      {2048, 768, 768}, {2048, 768, 3072}, {2048, 3072, 768}, {4096, 4096, 4096}};
  for (const auto& s : shapes) {
    // NN: x·W; NT: the data gradient dy·W^T; TN: the weight gradient x^T·dy. The forward with bias.
    for (int layout = 0; layout < 3; ++layout) {
      const Case c{s[0], s[1], s[2], layout == 2, layout == 1, layout == 0, 1, false, false};
      benchmark<kx::bfloat16_t>(c, workspace.ptr, have_lt);
      benchmark<kx::half_t>(c, workspace.ptr, have_lt);
      if (layout == 0) benchmark<float>(c, workspace.ptr, have_lt);
    }
  }
  std::printf("%s\n", ok ? "all validations passed" : "VALIDATION FAILED");
  return ok ? 0 : 1;
}
