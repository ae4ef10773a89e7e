// The element math of the fused tier that is not already a row function elsewhere, written once for
// CPU and CUDA. bias+GELU: y = gelu(x + b), dx = dy·gelu'(x + b) (x + b is recomputed in the
// backward rather than stored). residual+LayerNorm / residual+RMSNorm reuse kx/norm.h's row math on
// the sum s = x + residual, which is an output (the next residual stream) and so is rounded to the
// storage dtype before it is normalised: the fused op normalises exactly what it returns, as the
// unfused norm(add(x, r)) does.
#pragma once
#include "kx/elementwise.h"

namespace kx {

// kTanh selects GELU's tanh approximation (torch's approximate='tanh').
template <bool kTanh>
KX_HD float bias_gelu(float x, float bias) {
  const float z = x + bias;
  return kTanh ? gelu_tanh(z) : gelu_erf(z);
}

template <bool kTanh>
KX_HD float bias_gelu_grad(float dy, float x, float bias) {
  const float z = x + bias;
  return dy * (kTanh ? gelu_tanh_grad(z) : gelu_erf_grad(z));
}

}  // namespace kx
