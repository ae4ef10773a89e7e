// Kernel lab: softmax cross-entropy over a vocabulary-sized row ([2048, 21128], the BERT-Chinese
// vocabulary): the loss alone and the loss with its gradient, one block per row with the online
// max/sum of native/ops/cross_entropy/kernels.cuh, and a warp per row for comparison; validated
// against the CPU twin (kx/softmax.h's rows on the host) and timed. Build: see README.md.
#include <string>

#include "kx/softmax.h"
#include "lab.cuh"
#include "ops/cross_entropy/kernels.cuh"

using kx::cuda::RowLaunch;

template <class T> bool run_shape(int64_t rows, int64_t C, double copy) {
  const size_t n = (size_t)(rows * C);
  const int64_t ignore = -100;
  const auto x = lab::random_values<T>(n, -8.0f, 8.0f, 5);
  const auto xf = lab::widen(x);
  std::vector<int32_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r) labels[r] = r % 17 == 3 ? (int32_t)ignore : (int32_t)((r * 7919) % C);
  int64_t count = 0;
  for (int32_t l : labels) count += l != ignore;
  const float scale = 1.0f / (float)count;

  // The CPU twin: per-row loss and gradient, the mean in row order.
  std::vector<float> dx_ref(n, 0.0f), loss_rows(rows, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    if (labels[r] != ignore)
      loss_rows[r] = kx::cross_entropy_row_grad(&xf[r * C], &dx_ref[r * C], C, labels[r], scale);
  double loss_sum = 0;
  for (float l : loss_rows) loss_sum += l;
  const std::vector<float> loss_ref = {(float)(loss_sum / (double)count)};

  lab::DeviceBuffer<T> x_d(x), dx_d(n);
  lab::DeviceBuffer<int32_t> lab_d(labels);
  lab::DeviceBuffer<float> row_loss_d(rows), loss_d(1);
  const std::string shape = "[" + std::to_string(rows) + "," + std::to_string(C) + "]";
  const double bound = lab::nmse_bound<T>();
  const int64_t packs = C % kx::cuda::Vec16<T>::N == 0 ? C / kx::cuda::Vec16<T>::N : C;
  const RowLaunch block = kx::cuda::row_launch(rows, packs);
  const RowLaunch warp{true, kx::cuda::blocks_for(rows, kx::cuda::kRowWarpsPerBlock), 32 * kx::cuda::kRowWarpsPerBlock};
  bool ok = true;
  const std::pair<const char*, RowLaunch> versions[] = {{"ce loss block/row", block}, {"ce loss warp/row", warp}};
  for (const auto& version : versions) {
    const RowLaunch launch = version.second;
    auto run = [&] {
      kx::cuda::launch_cross_entropy_rows(x_d.ptr, lab_d.ptr, rows, C, ignore, nullptr, scale, row_loss_d.ptr,
                                          (T*)nullptr, 0, &launch);
      kx::cuda::launch_cross_entropy_mean(row_loss_d.ptr, rows, count, loss_d.ptr, 0);
    };
    run();
    LAB_CHECK(cudaDeviceSynchronize());
    ok &= lab::report(version.first, shape.c_str(), lab::type_name<T>(), lab::time_ms(run), (double)n * sizeof(T),
                      copy, lab::nmse(loss_ref, loss_d.download()), bound);
  }
  for (const auto& version : versions) {
    const RowLaunch launch = version.second;
    auto run = [&] {
      kx::cuda::launch_cross_entropy_rows(x_d.ptr, lab_d.ptr, rows, C, ignore, nullptr, scale, row_loss_d.ptr,
                                          dx_d.ptr, 0, &launch);
      kx::cuda::launch_cross_entropy_mean(row_loss_d.ptr, rows, count, loss_d.ptr, 0);
    };
    run();
    LAB_CHECK(cudaDeviceSynchronize());
    const double err = std::max(lab::nmse(dx_ref, dx_d.download()), lab::nmse(loss_ref, loss_d.download()));
    const std::string name = std::string(version.first) + "+grad";
    ok &= lab::report(name.c_str(), shape.c_str(), lab::type_name<T>(), lab::time_ms(run), 2.0 * n * sizeof(T), copy,
                      err, bound);
  }
  return ok;
}

int main() {
  const double copy = lab::copy_gbps(size_t(256) << 20);
  bool ok = run_shape<float>(2048, 21128, copy);
  ok &= run_shape<kx::bfloat16_t>(2048, 21128, copy);
  ok &= run_shape<kx::half_t>(2048, 21128, copy);
  return ok ? 0 : 1;
}
