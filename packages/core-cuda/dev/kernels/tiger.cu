// Kernel lab: one Tiger step on 10M float32 parameters (bf16 gradients too) with the learning rate
// scaled by the parameter's RMS per tensor and per row, and the accumulation micro-step: the
// kernels of native/ops/optim/kernels.cuh (gradient check and RMS pre-pass, then the update),
// validated against the CPU twin (ops/optim/math.h's element math in double on the host) and timed.
// Build: see README.md.
#include <cmath>
#include <string>

#include "lab.cuh"
#include "ops/optim/kernels.cuh"
#include "ops/optim/math.h"

struct Version {
  const char* name;
  bool update;
  bool per_row;
};

template <class G> bool run(int64_t rows, int64_t cols, double copy) {
  const int64_t n = rows * cols;
  const auto th0 = lab::random_values<float>(n, -1.0f, 1.0f, 6);
  const auto g = lab::random_values<G>(n, -1e-2f, 1e-2f, 7);
  const auto m0 = lab::random_values<float>(n, -1e-3f, 1e-3f, 8);
  kx::cuda::TigerStep s;
  s.lr = 1e-3;
  s.b1 = 0.965;
  s.b2 = 0.035;
  s.wd = 0.01;
  s.shrink = 0.99;
  s.centre = 0.0;
  s.gscale = 1.0;
  lab::DeviceBuffer<float> th_d(n), m_d(n);
  lab::DeviceBuffer<G> g_d(g);
  lab::DeviceBuffer<uint8_t> flag_d(1), scratch_d(kx::cuda::tiger_scratch_bytes(n, rows));
  const std::string shape = "[" + std::to_string(rows) + "," + std::to_string(cols) + "]";
  bool ok = true;
  const Version versions[] = {{"tiger rms=tensor", true, false}, {"tiger rms=row", true, true},
                              {"tiger accumulate", false, false}};
  for (const Version& v : versions) {
    s.update = v.update;
    // The CPU twin (optim.cpp's arithmetic): η from θ before the update, then the elements.
    std::vector<double> eta(rows, s.lr);
    if (v.update) {
      double total = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double sq = 0;
        for (int64_t c = 0; c < cols; ++c) sq += (double)th0[r * cols + c] * th0[r * cols + c];
        eta[r] = s.lr * std::sqrt(sq / (double)cols);
        total += sq;
      }
      if (!v.per_row) eta.assign(rows, s.lr * std::sqrt(total / (double)n));
    }
    std::vector<float> th_ref(th0), m_ref(m0);
    for (int64_t i = 0; i < n; ++i) {
      const float mi = (float)kx::tiger_momentum<double>(m_ref[i], s.gscale * kx::to_float(g[i]), s.b1, s.b2);
      m_ref[i] = mi;
      if (v.update) th_ref[i] = (float)kx::sign_step<double>(th_ref[i], mi, eta[i / cols], s.wd);
    }
    auto step = [&] {
      kx::cuda::launch_tiger(th_d.ptr, g_d.ptr, m_d.ptr, n, v.per_row ? rows : 1, cols, !v.per_row, s, scratch_d.ptr,
                             flag_d.ptr, 0);
    };
    th_d.upload(th0);
    m_d.upload(m0);
    step();
    LAB_CHECK(cudaDeviceSynchronize());
    const double err = std::max(lab::nmse(th_ref, th_d.download()), lab::nmse(m_ref, m_d.download()));
    const bool flag_ok = flag_d.download()[0] == 1;
    // Bytes: the pre-pass reads g (and θ for the RMS); the update reads θ, g, m and writes θ, m (a
    // micro-step without update reads g, m and writes m).
    const double prepass = sizeof(G) + (v.update ? 4 : 0), update = sizeof(G) + (v.update ? 16 : 8);
    const double bytes = (double)n * (prepass + update);
    ok &= flag_ok && lab::report(v.name, shape.c_str(), lab::type_name<G>(), lab::time_ms(step), bytes, copy, err,
                                 lab::nmse_bound<float>());
  }
  return ok;
}

int main() {
  const double copy = lab::copy_gbps(size_t(256) << 20);
  bool ok = run<float>(10240, 1024, copy);  // 10.5M parameters
  ok &= run<kx::bfloat16_t>(10240, 1024, copy);
  return ok ? 0 : 1;
}
