/**
 * Broadcasting and its adjoint: broadcastTo repeats a tensor along broadcast axes, sumTo folds a
 * broadcast result back onto an operand's shape (the gradient helper of every broadcasting op).
 * This module sits below ops/elementwise and ops/reduce: their gradients use it (sum's gradient
 * broadcasts, the binary ops' gradients sum back), so sumTo runs the sum kernel itself.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { fmtShape, sameShape } from '../shape.js';
import { registerGradient } from '../tape.js';
import type { Tensor } from '../tensor.js';
import { assertFloat, assertTensor } from './check.js';
import { reshape } from './shape.js';

/**
 * x repeated along broadcast axes to `shape` (NumPy rules: x's dims align to the right, each
 * equal to shape's or 1). Any dtype. Returns x itself when it already has that shape.
 */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  assertTensor(x, 'broadcastTo', 'x');
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ArgumentError(`broadcastTo: shape must be non-negative integers, got ${String(shape)}`);
  }
  const off = shape.length - x.rank;
  if (off < 0 || x.shape.some((d, i) => d !== 1 && d !== shape[off + i])) {
    throw new ShapeError(`broadcastTo: ${x.describe()} does not broadcast to ${fmtShape(shape)}`);
  }
  if (sameShape(x.shape, shape)) return x;
  return runKernel1('broadcast_to', [x], { shape: [...shape] });
}

/**
 * Sums x, a broadcast result, back to `shape` (the shape of an operand that was broadcast to
 * x.shape): leading extra axes and axes where `shape` has 1 are summed away. Returns x itself when
 * the shapes are equal; E_SHAPE when `shape` does not broadcast to x.shape.
 */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  assertTensor(x, 'sumTo', 'x');
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ArgumentError(`sumTo: shape must be a list of non-negative integers, got ${String(shape)}`);
  }
  if (sameShape(x.shape, shape)) return x;
  const off = x.rank - shape.length;
  if (off < 0 || shape.some((d, i) => d !== 1 && d !== x.shape[off + i])) {
    throw new ShapeError(`sumTo: ${fmtShape(shape)} does not broadcast to ${x.describe()}`);
  }
  const axes: number[] = [];
  for (let a = 0; a < x.rank; a++) if (a < off || (shape[a - off] === 1 && x.shape[a] !== 1)) axes.push(a);
  if (axes.length === 0) return reshape(x, shape);
  // What ops/reduce's sum(x, axes) does for these axes (sorted, distinct, in range): its float
  // check, then the kernel. ops/reduce registers the gradient of 'sum'.
  assertFloat(x, 'sum', 'x');
  return reshape(runKernel1('sum', [x], { axes, keepDims: false }), shape);
}

registerGradient('broadcast_to', ([dy], { inputs: [x] }) => (dy ? [sameShape(dy.shape, x!.shape) ? dy : sumTo(dy, x!.shape)] : []));
