/** Shape ops: reshape (a view), permute/transpose, slice, concat. */
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { fmtShape, sizeOf } from '../shape.js';
import { registerGradient } from '../tape.js';
import type { Tensor } from '../tensor.js';

/** The same elements under another shape (one dimension may be -1); shares x's storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < -1)) {
    throw new ArgumentError(`reshape: bad shape ${String(shape)}`);
  }
  const known = shape.filter((d) => d !== -1);
  if (shape.length - known.length > 1) throw new ShapeError(`reshape: more than one -1 in ${fmtShape(shape)}`);
  if (known.length === shape.length && sizeOf(shape) !== x.size) {
    throw new ShapeError(`reshape: ${x.describe()} has ${x.size} elements, ${fmtShape(shape)} needs ${sizeOf(shape)}`);
  }
  return runKernel1('reshape', [x], { shape: [...shape] });
}

registerGradient('reshape', ([dy], { inputs: [x] }) => [dy ? reshape(dy, x!.shape) : null]);
