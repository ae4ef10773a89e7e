// Which executor runs a fused group, by the device of its inputs: CPU groups go to
// run_fused_group_cpu (the emitter or the block interpreter, executor.h), CUDA groups to the CUDA
// executor (fused_group.cu: the group's PTX loaded and launched where ptx_writer.h writes it, else
// the precompiled interpreter kernel), which registers itself here when the build has CUDA, so the
// program and a build without nvcc (or without the op kernels) need no CUDA symbol.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops/fused_group/plan.h"

namespace kx {

// Runs a group on its inputs' device (the CPU when it has none): its outputs, in output-table order.
std::vector<Tensor> run_fused_group(const GroupProgram& p, const Inputs& in);

using CudaGroupRunner = std::vector<Tensor> (*)(const GroupProgram& p, const Inputs& in);
// Called once by fused_group.cu's static initialiser.
void register_cuda_group_runner(CudaGroupRunner runner);

// Whether KEXUE_FUSION=interp asks for the interpreters, on the CPU and on CUDA (read once; unset,
// empty or "emit" leave the choice to the executors; E_ARG for any other value).
bool fusion_interp_forced();

// The CUDA executor's counts: groups run from PTX and by the interpreter kernel, PTX kernels loaded,
// and loads that failed (each structure once per device) with the last failure's reason.
struct FusionCudaStats {
  int64_t ptx = 0;
  int64_t interpreted = 0;
  int64_t kernels = 0;
  int64_t load_failures = 0;
  std::string last_failure;
};
FusionCudaStats fusion_cuda_stats();

// Counting, for the CUDA executor.
void count_cuda_group(bool ran_ptx);
void count_ptx_load(const std::string* failure);

}  // namespace kx
