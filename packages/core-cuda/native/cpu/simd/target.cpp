// KEXUE_SIMD: the best target the vector runs of kx/simd.h may dispatch to. Highway picks the best
// target the CPU has below the cap; a cap above what the CPU has changes nothing.
#include <cstdlib>
#include <cstring>

#include "hwy/targets.h"
#include "kx/error.h"
#include "kx/simd.h"

namespace kx::simd {
namespace {

struct TargetCap {
  const char* name;
  int64_t target;  // a Highway target bit: lower bits are better targets
};

// "scalar" leaves Highway's fallback (HWY_SCALAR with Debian's gcc 12, else EMU128): the same code on plain
// C++ lanes, no SIMD instructions.
constexpr TargetCap kCaps[] = {{"avx512", HWY_AVX3}, {"avx2", HWY_AVX2}, {"sse4", HWY_SSE4}, {"scalar", HWY_EMU128}};

}  // namespace

void cap_target_from_env() {
  const char* value = std::getenv("KEXUE_SIMD");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "best") == 0) return;
  for (const TargetCap& cap : kCaps) {
    if (std::strcmp(value, cap.name) == 0) {
      hwy::DisableTargets(cap.target - 1);  // every better target
      return;
    }
  }
  fail(Code::Arg, "KEXUE_SIMD=", value, ": unknown SIMD target (expected best, avx512, avx2, sse4 or scalar)");
}

}  // namespace kx::simd
