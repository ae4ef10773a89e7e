// The per-element math of the fused optimizer updates, written once for CPU and CUDA (KX_HD). Each
// function takes the element's parameter θ, gradient g (already multiplied by the gradient scale)
// and state, in the compute type A, and updates θ and the state through references: the formulas
// are ops/optim/formulas.inc, which the CPU's vector runs (native/cpu/simd/optim.cpp) share with
// A = lanes of doubles; the CUDA kernels instantiate A = double. Each step rounds the stored float32
// values once; parameters and gradients may be stored as float32 or half types, state is always
// float32.
//
//   Tiger (ALGORITHMS §1.1, §1.3, §1.5), one micro-step:
//     m ← b1·m + b2·g        b1 = β on the first micro-step of an accumulation group, else 1;
//                            b2 = (1−β)/k
//     θ ← θ − η·(sign(m) + λ·θ)   only on the last micro-step of the group; η is the parameter's
//                            (or row's) learning rate: 0.5·α, α·RMS(θ) or α·RMS(row)
//     non-finite g: m kept, θ ← (θ − c)·s + c   (c = 1 for norm scales, else 0; s = shrink ratio)
//   Lion (§1.9):   c = β1·m + (1−β1)·g;  θ ← θ − η·(sign(c) + λ·θ);  m ← β2·m + (1−β2)·g
//   AdamW (torch.optim.AdamW, no amsgrad):
//     θ ← θ·(1 − η·λ);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//     θ ← θ − (η / (1−β1ᵗ))·m / (√v / √(1−β2ᵗ) + ε)
//   SGD (torch.optim.SGD):
//     d = g + λ·θ;  with momentum μ: buf ← d on the first step, else μ·buf + (1−dampening)·d;
//     d ← d + μ·buf (Nesterov) or buf;  θ ← θ − η·d
#pragma once
#include <cstdint>

#include "kx/math.h"

namespace kx {

// sign with sign(0) = 0 (TensorFlow's and PyTorch's); NaN gives 0.
template <class A> KX_HD A sign0(A x) { return (A)((x > 0) - (x < 0)); }

// AdamW's per-step constants, computed once per tensor.
template <class A> struct AdamWCoef {
  A decay;        // 1 − η·λ
  A beta1, beta2;
  A step_size;    // η / (1 − β1ᵗ)
  A bc2_sqrt;     // √(1 − β2ᵗ)
  A eps;
};

template <class A> KX_HD AdamWCoef<A> adamw_coef(A lr, A beta1, A beta2, A eps, A wd, A step) {
  AdamWCoef<A> c;
  c.decay = 1 - lr * wd;
  c.beta1 = beta1;
  c.beta2 = beta2;
  c.step_size = lr / (1 - pow(beta1, step));
  c.bc2_sqrt = sqrt(1 - pow(beta2, step));
  c.eps = eps;
  return c;
}

// SGD's per-tensor constants.
template <class A> struct SgdCoef {
  A lr, momentum, dampening, wd;
};

// Global-norm clipping's factor (torch's clip_grad_norm_, as Optimizer.step computes it on the
// host): the gradients scaled by `scale` have norm n; × max_norm/(n + 1e-6) when that is below 1.
// A non-finite n leaves the gradients as they are (Tiger's guard then skips those parameters).
template <class A> KX_HD A clip_factor(A norm, A max_norm, A scale) {
  const A n = norm * scale;
  const A c = max_norm / (n + (A)1e-6);
  return std::isfinite(n) && c < 1 ? c : (A)1;
}

#include "ops/optim/formulas.inc"

}  // namespace kx
