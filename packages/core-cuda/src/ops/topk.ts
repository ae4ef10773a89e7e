/**
 * topk: the k largest (or smallest) entries along one axis and where they are. Differentiable in x
 * through the values: the gradient scatters dy back to the chosen entries (topk_backward).
 */
import { ArgumentError } from '../errors.js';
import { runKernel, runKernel1 } from '../kernel.js';
import { normalizeAxis } from '../shape.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { assertFloat, booleanOption, optionsOf } from './check.js';

export interface TopkOptions {
  /** The axis to select along (default -1, the last; negative counts from the end). */
  axis?: number;
  /** The k largest (default) or the k smallest. */
  largest?: boolean;
}

export interface TopkResult {
  /** The chosen entries in x's dtype, most extreme first: x's shape with the axis k long. */
  values: Tensor;
  /** Their int32 positions along the axis, the same shape. */
  indices: Tensor;
}

/**
 * The k largest entries of x along `axis` (the k smallest with `largest: false`), sorted most
 * extreme first. NaN counts as larger than every number (first with largest, last with smallest,
 * as PyTorch), -0 equals +0, and equal entries come in index order, lower first (PyTorch's CPU
 * topk leaves their order unspecified). k must be an integer in [0, size of the axis] (E_ARG);
 * x float (E_DTYPE) with at least one dimension (E_ARG).
 */
export function topk(x: Tensor, k: number, options?: TopkOptions): TopkResult {
  assertFloat(x, 'topk', 'x');
  if (x.rank === 0) throw new ArgumentError(`topk: x must have at least one dimension, got ${x.describe()}`);
  const opts = optionsOf(options, 'topk');
  const axis = normalizeAxis(opts.axis ?? -1, x.rank, 'topk');
  const largest = booleanOption(opts.largest, 'topk', 'largest', true);
  const size = x.shape[axis]!;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > size) {
    throw new ArgumentError(`topk: k must be an integer in [0, ${size}] (the size of axis ${axis} of ${x.describe()}), got ${String(k)}`);
  }
  const [values, indices] = runKernel('topk', [x], { k, axis, largest });
  return { values: values!, indices: indices! };
}

registerGradient('topk', ([dv], { inputs: [x], outputs: [, indices], attrs }) => {
  if (!dv) return [null];
  const axis = attrs.axis as number;
  const g = dv.dtype === x!.dtype ? dv : cast(dv, x!.dtype);
  return [runKernel1('topk_backward', [indices!, g], { axis, length: x!.shape[axis]! })];
});
