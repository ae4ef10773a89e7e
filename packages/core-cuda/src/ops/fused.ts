/**
 * The fused tier: bias+GELU, residual+LayerNorm and residual+RMSNorm, each one native pass forward
 * and one backward (CPU and CUDA). They compute what their unfused compositions compute —
 * gelu(add(x, bias)), layerNorm(add(x, residual)), rmsNorm(add(x, residual)) — with fewer passes over
 * memory and fewer tensors kept for the backward. Shapes, dtypes and eps are checked natively with
 * the same errors as the unfused ops (E_SHAPE, E_DTYPE, E_ARG).
 */
import { ArgumentError } from '../errors.js';
import { runKernel } from '../kernel.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { assertFloat, assertTensor, checkEps, optionsOf } from './check.js';
import type { GeluOptions } from './elementwise.js';

function optionalParam(op: string, name: string, p: Tensor | null | undefined): Tensor | null {
  if (p === null || p === undefined) return null;
  assertTensor(p, op, `${name} (a Tensor or null)`);
  return p;
}

/**
 * gelu(x + bias) in one pass, bias a [D] row (x's last axis) of x's dtype: the activation of a
 * Linear layer whose bias is left to this op (BERT's FFN). x + bias is not rounded to x's dtype
 * before the GELU, and the backward recomputes it from x and bias rather than keeping it.
 * Differentiable in x and bias (dbias summed over rows, deterministically).
 */
export function biasGelu(x: Tensor, bias: Tensor, options?: GeluOptions): Tensor {
  assertFloat(x, 'biasGelu', 'x');
  assertFloat(bias, 'biasGelu', 'bias');
  const approximate = optionsOf(options, 'biasGelu').approximate ?? 'none';
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new ArgumentError(`biasGelu: approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  }
  return runKernel('bias_gelu', [x, bias], { approximate })[0]!;
}

/** The two outputs of the residual norms: the normalised sum and the sum itself (kx.dispose takes it whole). */
export type AddNormResult = {
  /** norm(x + residual). */
  y: Tensor;
  /** x + residual in x's dtype (the residual stream of a pre-norm block; dispose it when unused). */
  sum: Tensor;
};

/**
 * LayerNorm of a residual sum in one pass: sum = x + residual (stored in x's dtype) and
 * y = layerNorm(sum, gamma, beta, eps), as layerNorm(add(x, residual), gamma, beta, eps) computes it.
 * residual has x's shape and dtype; gamma and beta are optional [D] tensors of x's dtype.
 * Differentiable in x, residual, gamma and beta, through y and sum.
 */
export function addLayerNorm(x: Tensor, residual: Tensor, gamma?: Tensor | null, beta?: Tensor | null, eps = 1e-5): AddNormResult {
  assertFloat(x, 'addLayerNorm', 'x');
  assertFloat(residual, 'addLayerNorm', 'residual');
  const g = optionalParam('addLayerNorm', 'gamma', gamma);
  const b = optionalParam('addLayerNorm', 'beta', beta);
  const [y, sum, mean, rstd] = runKernel('add_layer_norm', [x, residual, g, b], { eps: checkEps('addLayerNorm', eps) });
  // The statistics live on only where the gradient tape holds them.
  mean!.dispose();
  rstd!.dispose();
  return { y: y!, sum: sum! };
}

/**
 * RMSNorm of a residual sum in one pass: sum = x + residual (stored in x's dtype) and
 * y = rmsNorm(sum, gamma, eps). residual has x's shape and dtype; gamma is an optional [D] tensor of
 * x's dtype. Differentiable in x, residual and gamma, through y and sum.
 */
export function addRmsNorm(x: Tensor, residual: Tensor, gamma?: Tensor | null, eps = 1e-6): AddNormResult {
  assertFloat(x, 'addRmsNorm', 'x');
  assertFloat(residual, 'addRmsNorm', 'residual');
  const g = optionalParam('addRmsNorm', 'gamma', gamma);
  const [y, sum, rstd] = runKernel('add_rms_norm', [x, residual, g], { eps: checkEps('addRmsNorm', eps) });
  rstd!.dispose();
  return { y: y!, sum: sum! };
}

// ---- gradients ---------------------------------------------------------------------------------

registerGradient('bias_gelu', ([dy], { inputs: [x, bias], attrs }) =>
  dy ? runKernel('bias_gelu_backward', [cast(dy, x!.dtype), x, bias], attrs) : [],
);

// x and residual share one gradient: the norm's dx plus ds (what reached the sum from its other
// uses), added in float32 inside the backward pass. When only the sum was used, that is ds itself.
registerGradient('add_layer_norm', ([dy, ds], { inputs: [x, , gamma, beta], outputs: [, s, mean, rstd] }) => {
  if (!dy) return ds ? [ds, ds, null, null] : [];
  const dt = x!.dtype;
  const [dx, dgamma, dbeta] = runKernel('add_layer_norm_backward', [cast(dy, dt), ds ? cast(ds, dt) : null, s, gamma, mean, rstd]);
  if (!gamma) dgamma!.dispose();
  if (!beta) dbeta!.dispose();
  return [dx, dx, gamma ? dgamma : null, beta ? dbeta : null];
});

registerGradient('add_rms_norm', ([dy, ds], { inputs: [x, , gamma], outputs: [, s, rstd] }) => {
  if (!dy) return ds ? [ds, ds, null] : [];
  const dt = x!.dtype;
  const [dx, dgamma] = runKernel('add_rms_norm_backward', [cast(dy, dt), ds ? cast(ds, dt) : null, s, gamma, rstd]);
  if (!gamma) dgamma!.dispose();
  return [dx, dx, gamma ? dgamma : null];
});
