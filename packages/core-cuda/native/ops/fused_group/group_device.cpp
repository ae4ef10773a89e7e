// The device dispatch of fused groups and the CUDA executor's counters (group_device.h).
#include "ops/fused_group/group_device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace kx {
namespace {

std::atomic<CudaGroupRunner> cuda_runner{nullptr};
std::atomic<int64_t> ptx_groups{0}, interpreted_groups{0}, ptx_kernels{0}, ptx_failures{0};
std::mutex failure_mu;
std::string last_failure;

}  // namespace

void register_cuda_group_runner(CudaGroupRunner runner) { cuda_runner.store(runner); }

std::vector<Tensor> run_fused_group(const GroupProgram& p, const Inputs& in) {
  const bool on_cuda = !in.empty() && in[0].defined() && in[0].device().type == DeviceType::CUDA;
  if (!on_cuda) return run_fused_group_cpu(p, in);
  const CudaGroupRunner runner = cuda_runner.load();
  KX_CHECK(runner != nullptr, NoCuda, "fused group on ", in[0].device().name(),
           ": this build has no CUDA executor of fused groups (built without CUDA op kernels)");
  return runner(p, in);
}

bool fusion_interp_forced() {
  static const bool forced = [] {
    const char* v = std::getenv("KEXUE_FUSION");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "emit") == 0) return false;
    if (std::strcmp(v, "interp") == 0) return true;
    fail(Code::Arg, "KEXUE_FUSION=", v, ": unknown executor (expected emit or interp)");
  }();
  return forced;
}

FusionCudaStats fusion_cuda_stats() {
  FusionCudaStats s;
  s.ptx = ptx_groups.load();
  s.interpreted = interpreted_groups.load();
  s.kernels = ptx_kernels.load();
  s.load_failures = ptx_failures.load();
  std::lock_guard<std::mutex> lock(failure_mu);
  s.last_failure = last_failure;
  return s;
}

void count_cuda_group(bool ran_ptx) { ++(ran_ptx ? ptx_groups : interpreted_groups); }

void count_ptx_load(const std::string* failure) {
  if (!failure) {
    ++ptx_kernels;
    return;
  }
  ++ptx_failures;
  std::lock_guard<std::mutex> lock(failure_mu);
  last_failure = *failure;
}

}  // namespace kx
