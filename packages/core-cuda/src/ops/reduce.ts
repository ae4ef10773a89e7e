/**
 * Reductions: sum, mean and max over any set of axes (sumTo, which folds a broadcast result back
 * onto an operand's shape, is in ops/broadcast). Float inputs only; the output keeps the input
 * dtype while accumulation runs in float32 (pairwise over long rows).
 */
import { ArgumentError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { normalizeAxes } from '../shape.js';
import { registerGradient, type OpRecord } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { broadcastTo } from './broadcast.js';
import { div } from './elementwise.js';
import { reshape } from './shape.js';
import { assertFloat } from './check.js';

type ReduceOp = 'sum' | 'mean' | 'max';

function reduce(op: ReduceOp, x: Tensor, axes: number | number[] | undefined, keepDims: boolean): Tensor {
  assertFloat(x, op, 'x');
  if (axes !== undefined && typeof axes !== 'number' && !Array.isArray(axes)) {
    throw new ArgumentError(`${op}: axes must be a number or a list of numbers, got ${typeof axes}`);
  }
  if (typeof keepDims !== 'boolean') throw new ArgumentError(`${op}: keepDims must be a boolean, got ${typeof keepDims}`);
  const list = normalizeAxes(axes, x.rank, op);
  // max has no identity: an empty reduced axis is an error unless the output is empty too.
  const outSize = x.shape.reduce((n, d, a) => (list.includes(a) ? n : n * d), 1);
  if (op === 'max' && outSize > 0 && list.some((a) => x.shape[a] === 0)) {
    throw new ArgumentError(`${op}: cannot reduce ${x.describe()} over an empty axis (max has no identity)`);
  }
  return runKernel1(op, [x], { axes: list, keepDims });
}

/**
 * Sum of x over `axes` (a number or a list; negative axes count from the end; all axes when
 * undefined or []). keepDims keeps reduced axes as size 1. Accumulates in float32 pairwise; the
 * result has x's dtype. An empty reduction sums to 0. Repeated or out-of-range axes → E_ARG.
 */
export function sum(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  return reduce('sum', x, axes, keepDims);
}

/** Mean of x over `axes` (as sum). The mean of an empty reduction is NaN, as in PyTorch. */
export function mean(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  return reduce('mean', x, axes, keepDims);
}

/**
 * Max of x over `axes` (as sum; NaN propagates). Its gradient is split evenly among tied maxima,
 * like PyTorch's amax. Reducing over an empty axis → E_ARG.
 */
export function max(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  return reduce('max', x, axes, keepDims);
}

/** x's shape with the reduced axes of a record kept as size 1 (where dy broadcasts back from). */
function keptShape({ inputs: [x], attrs }: OpRecord): number[] {
  const axes = normalizeAxes(attrs.axes as number[], x!.rank);
  return x!.shape.map((d, a) => (axes.includes(a) ? 1 : d));
}

function asDType(t: Tensor, like: Tensor): Tensor {
  return t.dtype === like.dtype ? t : cast(t, like.dtype);
}

registerGradient('sum', ([dy], rec) => [dy ? broadcastTo(reshape(asDType(dy, rec.inputs[0]!), keptShape(rec)), rec.inputs[0]!.shape) : null]);

registerGradient('mean', ([dy], rec) => {
  if (!dy) return [null];
  const x = rec.inputs[0]!;
  const count = x.size / Math.max(rec.outputs[0]!.size, 1);
  return [broadcastTo(reshape(div(asDType(dy, x), count), keptShape(rec)), x.shape)];
});

registerGradient('max', ([dy], { inputs: [x], outputs: [y], attrs }) => [
  dy ? runKernel1('max_backward', [x!, y!, asDType(dy, x!)], { axes: attrs.axes, keepDims: attrs.keepDims }) : null,
]);
