// cast's validation, shared by the CPU (cast.cpp) and CUDA (cast.cu) kernels.
#pragma once
#include "kx/registry.h"

namespace kx {

// The target dtype named by the `dtype` attribute; E_DTYPE for an unknown name.
inline DType cast_target(const Attrs& attrs) {
  DType to;
  KX_CHECK(dtype_from_name(attrs.str("dtype", ""), &to), DType, "cast: unknown target dtype '",
           attrs.str("dtype", ""), "'");
  return to;
}

}  // namespace kx
