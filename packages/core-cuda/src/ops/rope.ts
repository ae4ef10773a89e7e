/**
 * rope: rotary position embedding with interleaved pairs (ALGORITHMS.md §6; bert4keras, RoFormer).
 * Pair i = (x[2i], x[2i+1]) at position m turns by m·θ_i, θ_i = 10000^(−2i/D), the angle formed
 * in float32. Not the "rotate-half" layout of GPT-NeoX/LLaMA code.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { fmtShape } from '../shape.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { assertDTypeOf, assertFloat, assertTensor } from './check.js';

export interface RopeOptions {
  /**
   * int32 positions, [T] or any shape that broadcasts to x's leading axes [..., T] (e.g. [B, 1, T]
   * for x [B, H, T, D]). Default 0 … T−1 for every leading index.
   */
  positions?: Tensor | null;
  /** Pair layout; only 'interleaved' (adjacent pairs) is supported. */
  layout?: 'interleaved';
  /** Rotate back (by −m·θ_i): the transpose of the rotation, which is also its gradient. */
  inverse?: boolean;
}

/**
 * x [..., T, D] with each adjacent pair (2i, 2i+1) of row t rotated by positions[t]·θ_i:
 * y_2i = x_2i·cos − x_2i+1·sin, y_2i+1 = x_2i+1·cos + x_2i·sin. D must be even (E_SHAPE); x needs
 * at least two axes (E_SHAPE); positions must be int32 (E_DTYPE) and broadcast to x.shape[:-1]
 * (E_SHAPE); a layout other than 'interleaved' → E_ARG. Differentiable in x.
 */
export function rope(x: Tensor, options: RopeOptions = {}): Tensor {
  assertTensor(x, 'rope', 'x');
  if (options === null || typeof options !== 'object') throw new ArgumentError('rope: options must be an object');
  const { positions = null, layout = 'interleaved', inverse = false } = options;
  if (layout !== 'interleaved') {
    throw new ArgumentError(`rope: layout ${JSON.stringify(layout)} is not supported (only 'interleaved')`);
  }
  if (typeof inverse !== 'boolean') throw new ArgumentError(`rope: inverse must be a boolean, got ${typeof inverse}`);
  assertFloat(x, 'rope', 'x');
  if (x.rank < 2) throw new ShapeError(`rope: x must be [..., T, D], got ${x.describe()}`);
  const d = x.shape[x.rank - 1]!;
  if (d % 2 !== 0) throw new ShapeError(`rope: the last axis of ${x.describe()} must be even (pairs)`);
  if (positions !== null) {
    assertTensor(positions, 'rope', 'positions');
    assertDTypeOf(positions, 'int32', 'rope', 'positions');
    const lead = x.shape.slice(0, -1);
    const off = lead.length - positions.rank;
    if (off < 0 || positions.shape.some((p, k) => p !== 1 && p !== lead[off + k])) {
      throw new ShapeError(`rope: positions ${fmtShape(positions.shape)} do not broadcast to x's leading axes ${fmtShape(lead)}`);
    }
  }
  return runKernel1('rope', [x, positions], { inverse });
}

// The rotation is orthogonal, so its gradient is the inverse rotation at the same positions.
registerGradient('rope', ([dy], { inputs: [x, positions], attrs }) => [
  dy ? runKernel1('rope', [cast(dy, x!.dtype), positions], { inverse: !attrs.inverse }) : null,
  null,
]);
