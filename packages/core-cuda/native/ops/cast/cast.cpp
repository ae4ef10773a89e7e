// cast on the CPU: one pass, the element conversion from ops/cast/math.h.
#include <type_traits>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/cast/math.h"
#include "ops/cast/plan.h"

namespace kx {
namespace {

template <class T> constexpr bool is_float_storage =
    std::is_same_v<T, float> || std::is_same_v<T, half_t> || std::is_same_v<T, bfloat16_t>;

template <class From, class To>
void cast_loop(const From* src, To* dst, int64_t n) {
  cpu::parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<To, float> && is_float_storage<From>) {
      widen(src + b, dst + b, e - b);  // the vectorised row conversions of kx/convert.h
    } else if constexpr (std::is_same_v<From, float> && is_float_storage<To>) {
      narrow(src + b, dst + b, e - b);
    } else {
      for (int64_t i = b; i < e; ++i) dst[i] = CastTo<To>::from(src[i]);
    }
  });
}

std::vector<Tensor> cast_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const DType to = cast_target(attrs);
  Tensor y = empty(x.shape, to, x.device());
  KX_DISPATCH_ALL(x.dtype, {
    using From = scalar_t;
    KX_DISPATCH_ALL(to, cast_loop(x.data<From>(), y.data<scalar_t>(), x.numel()));
  });
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(cast, CPU, cast_cpu);

}  // namespace kx
