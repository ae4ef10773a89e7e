/** Shape ops: reshape (a view), permute/transpose, slice, concat. */
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { fmtShape, normalizeAxis, sizeOf } from '../shape.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { assertTensor } from './check.js';

/** The same elements under another shape (one dimension may be -1); shares x's storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  assertTensor(x, 'reshape');
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

/**
 * x with its axes reordered: output axis i is input axis perm[i] (negative entries count from the
 * end). A real copy (contiguous storage), any dtype; E_ARG when perm is not a permutation of x's axes.
 */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  assertTensor(x, 'permute');
  if (!Array.isArray(perm) || perm.length !== x.rank) {
    throw new ArgumentError(`permute: perm must list each of the ${x.rank} axes of ${x.describe()} once, got ${String(perm)}`);
  }
  const axes = perm.map((a) => normalizeAxis(a, x.rank, 'permute'));
  if (new Set(axes).size !== axes.length) throw new ArgumentError(`permute: repeated axis in [${perm.join(', ')}]`);
  return runKernel1('permute', [x], { perm: axes });
}

/** x with two axes swapped (by default the last two, a batched matrix transpose); a copy, any dtype. */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  assertTensor(x, 'transpose');
  const a0 = normalizeAxis(axis0, x.rank, 'transpose');
  const a1 = normalizeAxis(axis1, x.rank, 'transpose');
  const perm = [...Array(x.rank).keys()];
  perm[a0] = a1;
  perm[a1] = a0;
  return permute(x, perm);
}

registerGradient('permute', ([dy], { attrs }) => {
  if (!dy) return [null];
  const perm = attrs.perm as number[];
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return [runKernel1('permute', [dy], { perm: inverse })];
});

/**
 * The box of x starting at `begin` with extent `size` along each axis (size −1: to the end of the
 * axis). begin[a] must lie in [0, dim] (no negative indices) and the box inside x, else E_ARG.
 * A copy, any dtype.
 */
export function slice(x: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
  assertTensor(x, 'slice');
  const ints = (v: unknown): v is number[] => Array.isArray(v) && v.length === x.rank && v.every((d) => Number.isInteger(d));
  if (!ints(begin) || !ints(size)) {
    throw new ArgumentError(`slice: begin and size need one integer per axis of ${x.describe()}, got ${String(begin)} and ${String(size)}`);
  }
  const resolved = x.shape.map((d, a) => {
    const b = begin[a]!;
    const s = size[a] === -1 ? d - b : size[a]!;
    if (b < 0 || b > d || s < 0 || b + s > d) {
      throw new ArgumentError(`slice: a box of size ${fmtShape(size)} at ${fmtShape(begin)} does not fit in ${x.describe()}`);
    }
    return s;
  });
  return runKernel1('slice', [x], { begin: [...begin], size: resolved });
}

registerGradient('slice', ([dy], { inputs: [x], attrs }) => [
  dy ? runKernel1('slice_backward', [dy], { shape: [...x!.shape], begin: attrs.begin }) : null,
]);

// slice_backward is linear in dy: its gradient is the same slice of the upstream gradient.
registerGradient('slice_backward', ([dz], { inputs: [dy], attrs }) => [
  dz ? runKernel1('slice', [dz], { begin: attrs.begin, size: [...dy!.shape] }) : null,
]);

/**
 * The tensors joined along `axis` (negative counts from the end). They must share a dtype (E_DTYPE),
 * a rank and every dim but `axis` (E_SHAPE). A copy, any dtype; one tensor is returned as a copy too.
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) throw new ArgumentError('concat: expected a non-empty list of Tensors');
  tensors.forEach((t) => assertTensor(t, 'concat', 'each tensor'));
  const first = tensors[0]!;
  if (first.rank === 0) throw new ShapeError('concat: cannot join rank-0 tensors');
  const ax = normalizeAxis(axis, first.rank, 'concat');
  for (const t of tensors) {
    if (t.dtype !== first.dtype) throw new DTypeError(`concat: dtypes differ: ${first.describe()} and ${t.describe()}`);
    if (t.rank !== first.rank || t.shape.some((d, a) => a !== ax && d !== first.shape[a])) {
      throw new ShapeError(`concat: ${first.describe()} and ${t.describe()} differ outside axis ${ax}`);
    }
  }
  return runKernel1('concat', [...tensors], { axis: ax });
}

registerGradient('concat', ([dy], { inputs, attrs }) => {
  if (!dy) return inputs.map(() => null);
  const axis = attrs.axis as number;
  let at = 0;
  return inputs.map((x) => {
    const begin = dy.shape.map((_, a) => (a === axis ? at : 0));
    at += x!.shape[axis]!;
    return runKernel1('slice', [dy], { begin, size: [...x!.shape] });
  });
});
