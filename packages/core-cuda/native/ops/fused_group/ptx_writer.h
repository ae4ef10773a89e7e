// The PTX writer of group programs (plan.h; FUSION.md §4, the CUDA side): a group without a
// reduction, of the x86 emitter's ops (emitter.cpp), as the text of one `.visible .entry` kernel
// for sm_80, a grid-stride loop over the elements, shape-generic (the element count and each row
// input's period are kernel parameters). The CUDA executor (fused_group.cu) loads it with
// cudaLibraryLoadData and launches it (one-element inputs read as rows of period 1, since their
// value is on the device); tests check the text with ptxas (compile_ptx.test.ts).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/fused_group/plan.h"

namespace kx {

// How the kernel reads input k: element i of a stream (contiguous), element i mod period of a row
// (a broadcast along the innermost dims), or one float32 value (a scalar, converted by the caller).
enum class PtxRead : uint8_t { Unused, Float32, UInt8, Float32Row, UInt8Row, Scalar };

// The kernel's name in the text.
constexpr const char* kPtxGroupEntry = "kx_fused_group";

// The PTX of program p with its inputs read as `reads` (one per input), or nullopt when the writer
// does not support it (a reduction, a half-precision output, an op the x86 emitter does not emit,
// a loaded input marked Unused). Kernel parameters, in order: n (u64, the element count); per input,
// by its read: a pointer (stream), a pointer and a period (u64, row), an f32 (scalar), nothing
// (unused); then a pointer per output (float32, element i).
std::optional<std::string> group_ptx(const GroupProgram& p, const std::vector<PtxRead>& reads);

}  // namespace kx
