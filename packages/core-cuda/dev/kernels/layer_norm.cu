// Kernel lab: LayerNorm forward (a warp per row and a block per row) and backward (dx with
// deterministic dgamma/dbeta partials), the kernels of native/ops/norm/kernels.cuh, validated
// against the CPU twin (ops/norm/math.h's rows on the host) and timed. Build: see README.md.
#include <string>

#include "lab.cuh"
#include "ops/norm/kernels.cuh"
#include "ops/norm/math.h"

using kx::cuda::RowLaunch;

template <class T> bool run_shape(int64_t rows, int64_t d, double copy) {
  const float eps = 1e-5f;
  const size_t n = (size_t)(rows * d);
  const auto x = lab::random_values<T>(n, -2.0f, 2.0f, 1), dy = lab::random_values<T>(n, -1.0f, 1.0f, 2);
  const auto gamma = lab::random_values<T>(d, 0.5f, 1.5f, 3), beta = lab::random_values<T>(d, -0.5f, 0.5f, 4);
  const auto xf = lab::widen(x), dyf = lab::widen(dy), gf = lab::widen(gamma), bf = lab::widen(beta);

  // The CPU twin.
  std::vector<float> y_ref(n), mean_ref(rows), rstd_ref(rows), dx_ref(n), dg_ref(d, 0.0f), db_ref(d, 0.0f), xhat(d);
  for (int64_t r = 0; r < rows; ++r) {
    const kx::RowStats s = kx::layer_norm_row(&xf[r * d], gf.data(), bf.data(), &y_ref[r * d], d, eps);
    mean_ref[r] = s.mean;
    rstd_ref[r] = s.rstd;
    kx::layer_norm_row_backward(&dyf[r * d], &xf[r * d], gf.data(), s.mean, s.rstd, &dx_ref[r * d], xhat.data(),
                                dg_ref.data(), db_ref.data(), d);
  }

  lab::DeviceBuffer<T> x_d(x), dy_d(dy), g_d(gamma), b_d(beta), y_d(n), dx_d(n), dg_d(d), db_d(d);
  lab::DeviceBuffer<float> mean_d(rows), rstd_d(rows), part_d(kx::cuda::norm_partial_blocks(rows) * 2 * d);
  const std::string shape = "[" + std::to_string(rows) + "," + std::to_string(d) + "]";
  const double bound = lab::nmse_bound<T>();
  bool ok = true;

  const int64_t packs = d % kx::cuda::Vec16<T>::N == 0 ? d / kx::cuda::Vec16<T>::N : d;
  const RowLaunch warp{true, kx::cuda::blocks_for(rows, kx::cuda::kRowWarpsPerBlock), 32 * kx::cuda::kRowWarpsPerBlock};
  const RowLaunch block = {false, kx::cuda::blocks_for(rows, 1),
                           (unsigned)std::min<int64_t>(1024, std::max<int64_t>(128, (packs / 4 + 31) / 32 * 32))};
  const double fwd_bytes = 2.0 * n * sizeof(T) + 8.0 * rows;
  const std::pair<const char*, RowLaunch> versions[] = {{"layer_norm fwd warp/row", warp},
                                                        {"layer_norm fwd block/row", block}};
  for (const auto& version : versions) {
    const char* name = version.first;
    const RowLaunch launch = version.second;
    auto run = [&] {
      kx::cuda::launch_layer_norm(x_d.ptr, g_d.ptr, b_d.ptr, y_d.ptr, mean_d.ptr, rstd_d.ptr, rows, d, eps, 0,
                                  &launch);
    };
    run();
    LAB_CHECK(cudaDeviceSynchronize());
    const double err = std::max(lab::nmse(y_ref, y_d.download()), lab::nmse(rstd_ref, rstd_d.download()));
    ok &= lab::report(name, shape.c_str(), lab::type_name<T>(), lab::time_ms(run), fwd_bytes, copy, err, bound);
  }

  auto backward = [&] {
    kx::cuda::launch_layer_norm_backward(dy_d.ptr, x_d.ptr, g_d.ptr, mean_d.ptr, rstd_d.ptr, dx_d.ptr, dg_d.ptr,
                                         db_d.ptr, part_d.ptr, rows, d, 0);
  };
  backward();
  LAB_CHECK(cudaDeviceSynchronize());
  const double err = std::max({lab::nmse(dx_ref, dx_d.download()), lab::nmse(dg_ref, dg_d.download()),
                               lab::nmse(db_ref, db_d.download())});
  const double bwd_bytes = 3.0 * n * sizeof(T) + 8.0 * rows + 2.0 * part_d.n * sizeof(float);
  ok &= lab::report("layer_norm bwd", shape.c_str(), lab::type_name<T>(), lab::time_ms(backward), bwd_bytes, copy, err,
                    bound);
  return ok;
}

int main() {
  const double copy = lab::copy_gbps(size_t(256) << 20);
  bool ok = true;
  const std::pair<int64_t, int64_t> shapes[] = {{16 * 128, 768}, {8192, 1024}};
  for (const auto& s : shapes) {
    ok &= run_shape<float>(s.first, s.second, copy);
    ok &= run_shape<kx::bfloat16_t>(s.first, s.second, copy);
    ok &= run_shape<kx::half_t>(s.first, s.second, copy);
  }
  return ok ? 0 : 1;
}
