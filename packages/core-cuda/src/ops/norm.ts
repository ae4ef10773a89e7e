/**
 * Normalisation over the last axis: layerNorm (PyTorch F.layer_norm semantics) and rmsNorm
 * (T5LayerNorm). Statistics are computed in float32 for every dtype; x, gamma and beta share one
 * dtype. The native ops also return the row statistics (mean, rstd) that their backward passes use.
 */
import { DTypeError, ShapeError } from '../errors.js';
import { runKernel } from '../kernel.js';
import { fmtShape } from '../shape.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { assertTensor, assertFloat, checkEps } from './check.js';

function checkX(op: string, x: unknown): asserts x is Tensor {
  assertFloat(x, op, 'x');
  if (x.rank < 1) throw new ShapeError(`${op}: x must have at least one axis, got ${x.describe()}`);
}

/** An optional [D] parameter of x's dtype; null when absent. */
function checkParam(op: string, name: string, p: Tensor | null | undefined, x: Tensor): Tensor | null {
  if (p === null || p === undefined) return null;
  assertTensor(p, op, `${name} (a Tensor or null)`);
  const d = x.shape[x.rank - 1]!;
  if (p.rank !== 1 || p.shape[0] !== d) {
    throw new ShapeError(`${op}: ${name} must have shape [${d}] (x's last axis), got ${fmtShape(p.shape)}`);
  }
  if (p.dtype !== x.dtype) throw new DTypeError(`${op}: ${name} is ${p.dtype} but x is ${x.dtype}; they must match`);
  return p;
}

/**
 * Layer normalisation over the last axis, as PyTorch's F.layer_norm(x, [D], gamma, beta, eps):
 * y = (x − mean) / √(var + eps) · gamma + beta, with the biased variance. gamma and beta are
 * optional [D] tensors of x's dtype (E_SHAPE / E_DTYPE otherwise). Half inputs are normalised with
 * float32 statistics. Differentiable in x, gamma and beta.
 */
export function layerNorm(x: Tensor, gamma?: Tensor | null, beta?: Tensor | null, eps = 1e-5): Tensor {
  checkX('layerNorm', x);
  const g = checkParam('layerNorm', 'gamma', gamma, x);
  const b = checkParam('layerNorm', 'beta', beta, x);
  const [y, mean, rstd] = runKernel('layer_norm', [x, g, b], { eps: checkEps('layerNorm', eps) });
  // The statistics live on only where the gradient tape holds them.
  mean!.dispose();
  rstd!.dispose();
  return y!;
}

/**
 * RMS normalisation over the last axis (T5LayerNorm; no centring, no bias):
 * y = x · rsqrt(mean(x²) + eps) · gamma. gamma is an optional [D] tensor of x's dtype. Half inputs
 * are normalised with a float32 rstd. Differentiable in x and gamma.
 */
export function rmsNorm(x: Tensor, gamma?: Tensor | null, eps = 1e-6): Tensor {
  checkX('rmsNorm', x);
  const g = checkParam('rmsNorm', 'gamma', gamma, x);
  const [y, rstd] = runKernel('rms_norm', [x, g], { eps: checkEps('rmsNorm', eps) });
  rstd!.dispose();
  return y!;
}

// dx, dgamma and dbeta come from one native pass; the parameter gradients of absent parameters are
// dropped.
registerGradient('layer_norm', ([dy], { inputs: [x, gamma, beta], outputs: [, mean, rstd] }) => {
  if (!dy) return [null, null, null];
  const [dx, dgamma, dbeta] = runKernel('layer_norm_backward', [cast(dy, x!.dtype), x, gamma, mean, rstd]);
  if (!gamma) dgamma!.dispose();
  if (!beta) dbeta!.dispose();
  return [dx, gamma ? dgamma : null, beta ? dbeta : null];
});

registerGradient('rms_norm', ([dy], { inputs: [x, gamma], outputs: [, rstd] }) => {
  if (!dy) return [null, null];
  const [dx, dgamma] = runKernel('rms_norm_backward', [cast(dy, x!.dtype), x, gamma, rstd]);
  if (!gamma) dgamma!.dispose();
  return [dx, gamma ? dgamma : null];
});
