/**
 * softmax and logSoftmax along one axis: stable (shifted by the row max), float32 math, output in
 * the input's dtype. Gradients run natively from the saved output (softmax_backward).
 */
import { ArgumentError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { normalizeAxis } from '../shape.js';
import { registerGradient, type OpRecord } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { assertFloat } from './check.js';

function checkInput(op: string, x: Tensor, axis: number): number {
  assertFloat(x, op, 'x');
  if (x.rank === 0) throw new ArgumentError(`${op}: x must have at least one dimension, got ${x.describe()}`);
  return normalizeAxis(axis, x.rank, op);
}

/**
 * exp(x) / sum(exp(x)) along `axis` (default the last; negative counts from the end). A slice of
 * all −inf gives NaN, as PyTorch. Axis out of range → E_ARG; non-float x → E_DTYPE.
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  return runKernel1('softmax', [x], { axis: checkInput('softmax', x, axis) });
}

/** log(softmax(x)) along `axis`, computed as (x − max) − log(sum(exp(x − max))). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return runKernel1('log_softmax', [x], { axis: checkInput('logSoftmax', x, axis) });
}

function gradient(log: boolean) {
  return ([dy]: (Tensor | null)[], { outputs: [y], attrs }: OpRecord): (Tensor | null)[] => {
    if (!dy) return [null];
    const g = dy.dtype === y!.dtype ? dy : cast(dy, y!.dtype);
    return [runKernel1('softmax_backward', [y!, g], { axis: attrs.axis as number, log })];
  };
}

registerGradient('softmax', gradient(false));
registerGradient('log_softmax', gradient(true));
