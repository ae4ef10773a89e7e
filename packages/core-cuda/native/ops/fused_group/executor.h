// Which executor runs a fused group on the CPU (FUSION.md §4): the x86-64 emitter (emitter.h) where
// it can, else the block interpreter (interpreter.h). KEXUE_FUSION=interp forces the interpreter;
// unset, empty or "emit" leaves the choice to the CPU and the group (any other value is E_ARG).
// The emitter needs a build with Xbyak and a CPU target of AVX2 or better (the vector runs' own,
// so KEXUE_SIMD=avx2 also makes it write AVX2 code on an AVX-512 CPU), and supports groups
// without a reduction whose inputs are contiguous, a row broadcast along the innermost dims, a
// float32 column broadcast along them, or one element, and whose instructions it emits
// (emitter.cpp); any other group runs in the interpreter.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "ops/fused_group/plan.h"

namespace kx {

// The code the emitter writes in this process: "avx512", "avx2", or "interp" where it writes none.
const char* fusion_executor_name();

// Groups run so far by each executor, and kernels emitted (the cache's size).
struct FusionStats {
  int64_t emitted = 0;
  int64_t interpreted = 0;
  int64_t kernels = 0;
};
FusionStats fusion_stats();

// Runs a group on inputs that passed check_group_inputs through an emitted kernel: its outputs,
// or nothing (and nothing written) when the emitter cannot run it and the caller must interpret
// it. Counts the group under its executor.
std::optional<std::vector<Tensor>> run_emitted_group(const GroupProgram& p, const Inputs& in);

}  // namespace kx
