// The x86-64 emitter of group programs (plan.h; FUSION.md §4, the CPU's default executor): a group
// without a reduction becomes one machine-code loop, written with Xbyak, that keeps the program's
// registers in vector registers (zmm with AVX-512, ymm with AVX2 + FMA; the rest spilled to the
// stack) and reads and writes its tensors in place. The driver (emitted_group.cpp) chooses the
// executor, classifies the inputs, caches kernels and splits the range over the thread pool; this
// header is what the driver and the code generator (emitter.cpp) share.
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "ops/fused_group/plan.h"

namespace kx {

enum class KernelIsa : uint8_t { Avx2, Avx512 };

// How a kernel reads input k: a stream (element i of the call at stream pointer + i, so a
// contiguous input and a row broadcast along the innermost dims read alike: the driver points a row
// at the right column), one number the driver converted to float32 (a scalar broadcast), or the
// float32 at the stream pointer for every element of the call (a column: an input broadcast along
// the innermost dims, such as a [rows, 1] mean over [rows, cols], whose element the driver points
// at for each call, which never crosses a row).
enum class InputRead : uint8_t { Unused, Float32, Float16, BFloat16, UInt8, Scalar, Column };

// What a kernel's code depends on besides the program: the cache key's non-program part.
struct KernelLayout {
  KernelIsa isa = KernelIsa::Avx2;
  DType dtype = DType::Float32;  // the outputs'
  std::array<InputRead, kMaxGroupInputs> reads{};
};

// The kernel's 32-bit constants, one table per run: the fixed ones (kernel_fixed_constants(): the
// sign bit and 1.0f (for neg and rsqrt), bfloat16 rounding's bias and quiet NaN (as integers), the
// exponential's clamps, multipliers and polynomial and, for AVX2's 2^n, two integers, then tanh's,
// the GELUs' and their derivatives'), then the scalar inputs' values by input index, then each
// instruction's immediate by its index (so a new immediate needs no new kernel).
constexpr int kConstSign = 0;
constexpr int kConstOne = 1;
constexpr int kConstBf16Bias = 2;
constexpr int kConstBf16NaN = 3;
constexpr int kConstExpMax = 4;        // 89: e^x overflows to infinity above
constexpr int kConstExpMin = 5;        // -104: and flushes to zero below
constexpr int kConstLog2e = 6;
constexpr int kConstShifter = 7;       // 1.5 · 2^23: adding it rounds to an integer
constexpr int kConstNegShifter = 8;
constexpr int kConstLn2Hi = 9;
constexpr int kConstLn2Lo = 10;
constexpr int kConstExpPoly = 11;      // six coefficients, highest degree first
constexpr int kConstExpBitsBias = 17;  // -(the bits of 1.5 · 2^23), as an integer
constexpr int kConstExpBias = 18;      // 127, the float exponent's bias, as an integer
constexpr int kConstAbsMask = 19;      // every bit but the sign's
constexpr int kConstHalf = 20;
constexpr int kConstTwo = 21;
constexpr int kConstTanhCut = 22;      // 0.625: tanh's polynomial below, 1 − 2 / (e^2|x| + 1) above
constexpr int kConstTanhPoly = 23;     // five coefficients, highest degree first
constexpr int kConstInvSqrt2 = 28;
constexpr int kConstErfP = 29;         // Abramowitz-Stegun 7.1.26's p
constexpr int kConstErfPoly = 30;      // its five coefficients, highest degree first
constexpr int kConstGeluCubic = 35;    // 0.044715
constexpr int kConstSqrt2OverPi = 36;
constexpr int kConstInvSqrt2Pi = 37;    // 1 / √(2π): GELU's derivative's φ
constexpr int kConstGeluTanhSlope = 38; // 3 · 0.044715: the tanh GELU's inner derivative
constexpr int kConstInputs = 39;
constexpr int kConstImms = kConstInputs + kMaxGroupInputs;

// The bits of the fixed constants, slots 0 to kConstInputs - 1 of every run's table.
const std::array<uint32_t, kConstInputs>& kernel_fixed_constants();

// A kernel call: elements [0, n) of every stream; streams[k] for input k, streams[kMaxGroupInputs
// + k] for output k (of the layout's dtype). n is a multiple of lanes unless the kernel masks its
// tail.
using GroupKernelFn = void (*)(const char* const* streams, const float* constants, int64_t n);
constexpr int kKernelStreams = kMaxGroupInputs + kMaxGroupOutputs;

class GroupKernel {
 public:
  virtual ~GroupKernel() = default;
  GroupKernelFn fn = nullptr;
  int lanes = 0;
  // AVX-512 kernels run a last partial vector under an opmask (loads masked, so nothing past the
  // end is touched); the driver runs AVX2 kernels' last elements over zero-padded copies.
  bool masks_tail = false;
};

inline int kernel_lanes(KernelIsa isa) { return isa == KernelIsa::Avx512 ? 16 : 8; }

// Whether this build has the emitter (Xbyak's header was found, an x86-64 target).
bool emitter_built();

// The kernel of program p (a group without a reduction) for `layout`, or null when the emitter
// does not support one of its instructions (the group then runs in the interpreter).
std::unique_ptr<GroupKernel> emit_group_kernel(const GroupProgram& p, const KernelLayout& layout);

}  // namespace kx
