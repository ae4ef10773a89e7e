// Shared helpers of the kernel-lab programs (dev/kernels/*.cu): CUDA error checks, random inputs,
// device buffers, timing with CUDA events (median of repeats), the device-to-device copy bandwidth
// to compare against, and the normalised mean squared error against the CPU twin.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kx/dtype.h"

#define LAB_CHECK(call)                                                                              \
  do {                                                                                               \
    const cudaError_t err_ = (call);                                                                 \
    if (err_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

namespace lab {

// Uniform values in [lo, hi) from a fixed seed, rounded to T (so the CPU twin sees the stored values).
template <class T> std::vector<T> random_values(size_t n, float lo, float hi, uint64_t seed) {
  std::vector<T> out(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (auto& v : out) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = (float)(s >> 40) / (float)(1ull << 24);
    v = kx::from_float<T>(lo + (hi - lo) * u);
  }
  return out;
}

template <class T> std::vector<float> widen(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kx::to_float(v[i]);
  return out;
}

// A device copy of a host vector, freed at scope exit.
template <class T> struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) { LAB_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) {
    LAB_CHECK(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(n);
    LAB_CHECK(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
};

// Median milliseconds of `reps` runs of launch() (after two warm-up runs), timed with CUDA events.
template <class F> float time_ms(F launch, int reps = 20) {
  cudaEvent_t start, stop;
  LAB_CHECK(cudaEventCreate(&start));
  LAB_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 2; ++i) launch();
  std::vector<float> ms(reps);
  for (int i = 0; i < reps; ++i) {
    LAB_CHECK(cudaEventRecord(start));
    launch();
    LAB_CHECK(cudaEventRecord(stop));
    LAB_CHECK(cudaEventSynchronize(stop));
    LAB_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  LAB_CHECK(cudaGetLastError());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2];
}

inline double gbps(double bytes, float ms) { return bytes / (ms * 1e-3) / 1e9; }

// The device-to-device copy's bandwidth (bytes read + written) for a copy of `bytes`: the roof the
// row kernels are measured against.
inline double copy_gbps(size_t bytes) {
  DeviceBuffer<uint8_t> a(bytes), b(bytes);
  const float ms = time_ms([&] { LAB_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice)); });
  return gbps(2.0 * (double)bytes, ms);
}

// Σ (got − ref)² / Σ ref² (0 when both are 0).
template <class T> double nmse(const std::vector<float>& ref, const std::vector<T>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = (double)kx::to_float(got[i]) - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

// The bound a result of storage type T must meet: 1e-7 in float32, about the dtype's ε² otherwise.
template <class T> double nmse_bound() {
  if constexpr (std::is_same<T, float>::value) return 1e-7;
  else if constexpr (std::is_same<T, kx::half_t>::value) return 1e-5;
  else return 1e-4;
}

template <class T> const char* type_name() {
  if constexpr (std::is_same<T, float>::value) return "f32";
  else if constexpr (std::is_same<T, kx::half_t>::value) return "f16";
  else return "bf16";
}

// One result line; returns whether the check passed.
inline bool report(const char* version, const char* shape, const char* dtype, float ms, double bytes, double copy,
                   double err, double bound) {
  const bool ok = err <= bound;
  std::printf("%-26s %-14s %-5s %9.4f ms %8.1f GB/s (%5.1f%% of copy %7.1f GB/s)  nmse %.2e %s\n", version, shape,
              dtype, ms, gbps(bytes, ms), 100.0 * gbps(bytes, ms) / copy, copy, err, ok ? "ok" : "FAIL");
  return ok;
}

}  // namespace lab
