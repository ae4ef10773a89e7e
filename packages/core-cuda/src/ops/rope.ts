/**
 * rope: rotary position embedding (ALGORITHMS.md §6). Of the first r channels (the rotary dim,
 * default all D), pair i at position m turns by (m / s)·θ_i with θ_i = base^(−2i/r) (the angle
 * formed in float32), in one of two pair layouts:
 * - 'interleaved' (bert4keras, RoFormer, the default): pairs (2i, 2i+1);
 * - 'rotate-half' (GPT-NeoX, LLaMA): pairs (i, i + r/2).
 * The two are the same rotation up to a fixed permutation of channels (`ropeLayoutPermutation`),
 * so weights move between them by permuting W_q and W_k rows (`@kexue/models`'
 * convertRopeCheckpoint).
 */
import { tensor } from '../creation.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { fmtShape } from '../shape.js';
import { registerGradient } from '../tape.js';
import type { Tensor } from '../tensor.js';
import { sumTo } from './broadcast.js';
import { cast } from './cast.js';
import { assertDTypeOf, assertFloat, assertTensor } from './check.js';
import { add, mul, sub } from './elementwise.js';
import { reshape, slice } from './shape.js';

/** The pair layout: adjacent pairs (2i, 2i+1), or halves (i, i + r/2). */
export type RopeLayout = 'interleaved' | 'rotate-half';

/**
 * Longer contexts than training saw:
 * - 'linear' (position interpolation): positions divided by `factor`, so m·θ_i becomes (m/factor)·θ_i;
 * - 'ntk' (NTK-aware): the base multiplied by factor^(r/(r−2)), which keeps the highest frequency
 *   and stretches the lowest by `factor` (r ≥ 4).
 */
export interface RopeScaling {
  type: 'linear' | 'ntk';
  /** The context extension, > 0 (1 changes nothing). */
  factor: number;
}

export interface RopeOptions {
  /**
   * int32 positions, [T] or any shape that broadcasts to x's leading axes [..., T] (e.g. [B, 1, T]
   * for x [B, H, T, D]). Default 0 … T−1 for every leading index.
   */
  positions?: Tensor | null;
  /** Added to every position (the default 0 … T−1 or the given ones): a KV-cached decoder passes the cache length. Default 0. */
  offset?: number;
  /** Pair layout. Default 'interleaved'. */
  layout?: RopeLayout;
  /** θ's base. Default 10000. */
  base?: number;
  /** Rotate only the first r channels (even, 2 ≤ r ≤ D); the rest pass through. Default D. */
  rotaryDim?: number;
  /** Position interpolation or NTK-aware base scaling. Default none. */
  scaling?: RopeScaling | null;
  /**
   * Explicit frequencies θ_i, float32 [r/2] (instead of base^(−2i/r); `base` and an 'ntk' scaling
   * must then be left out): e.g. the θ_i of a general generator (generalRope). Differentiable.
   */
  frequencies?: Tensor | null;
  /** Rotate back (by −m·θ_i): the transpose of the rotation, which is also its gradient. */
  inverse?: boolean;
}

const DEFAULT_BASE = 10000;

function positiveNumber(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ArgumentError(`rope: ${name} must be a positive finite number, got ${String(value)}`);
  }
  return value;
}

/**
 * The base that `scaling` leaves for rotary dim r: base·factor^(r/(r−2)) for NTK-aware scaling, else
 * base. E_ARG for an NTK scaling with r < 4 or a bad factor.
 */
export function ropeScaledBase(base: number, rotaryDim: number, scaling: RopeScaling | null = null): number {
  positiveNumber(base, 'base');
  if (scaling === null || scaling.type !== 'ntk') return base;
  const factor = positiveNumber(scaling.factor, 'scaling.factor');
  if (!(rotaryDim >= 4)) throw new ArgumentError(`rope: NTK scaling needs a rotary dim ≥ 4, got ${rotaryDim}`);
  return base * factor ** (rotaryDim / (rotaryDim - 2));
}

/** E_ARG unless r is an even integer in [2, max] (`max`: the channels there are). */
function checkRotaryDim(r: unknown, max: number, what: string): number {
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 2 || r % 2 !== 0 || r > max) {
    throw new ArgumentError(`${what}: rotaryDim must be an even integer ${max === Infinity ? '≥ 2' : `in [2, ${max}]`}, got ${String(r)}`);
  }
  return r;
}

/** θ_i = base^(−2i/r), i < r/2, in float64 (the kernels round each to float32). */
export function ropeFrequencies(rotaryDim: number, base = DEFAULT_BASE): Float64Array {
  checkRotaryDim(rotaryDim, Infinity, 'rope');
  positiveNumber(base, 'base');
  return Float64Array.from({ length: rotaryDim / 2 }, (_, i) => base ** ((-2 * i) / rotaryDim));
}

/**
 * The channel order that turns one layout into the other within a head of size D with rotary dim r:
 * perm[j] is the interleaved channel that rotate-half channel j comes from (perm[i] = 2i,
 * perm[i + r/2] = 2i + 1, channels ≥ r fixed), so rope_rotateHalf(x[perm]) = rope_interleaved(x)[perm].
 */
export function ropeLayoutPermutation(headSize: number, rotaryDim = headSize): number[] {
  if (!Number.isInteger(headSize) || headSize < 2) throw new ArgumentError(`ropeLayoutPermutation: headSize must be an integer ≥ 2, got ${String(headSize)}`);
  checkRotaryDim(rotaryDim, headSize, 'ropeLayoutPermutation');
  const half = rotaryDim / 2;
  return Array.from({ length: headSize }, (_, j) => (j >= rotaryDim ? j : j < half ? 2 * j : 2 * (j - half) + 1));
}

/**
 * x [..., T, D] with pair i of its first r channels at row t rotated by (positions[t] + offset)·θ_i
 * (divided by the linear scaling factor): y_a = x_a·cos − x_b·sin, y_b = x_b·cos + x_a·sin for the
 * layout's pair (a, b). Differentiable in x (and in `frequencies`).
 *
 * Errors: x not floating (E_DTYPE) or of rank < 2 (E_SHAPE); D odd without a rotaryDim (E_SHAPE);
 * rotaryDim odd, < 2 or > D (E_ARG); positions not int32 (E_DTYPE) or not broadcasting to
 * x.shape[:-1] (E_SHAPE); an unknown layout or scaling type, a base or factor not positive and
 * finite, a non-integer offset (E_ARG); frequencies not float32 (E_DTYPE) or not [r/2] (E_SHAPE).
 */
export function rope(x: Tensor, options: RopeOptions = {}): Tensor {
  assertTensor(x, 'rope', 'x');
  if (options === null || typeof options !== 'object') throw new ArgumentError('rope: options must be an object');
  const { positions = null, layout = 'interleaved', inverse = false, offset = 0, scaling = null, frequencies = null } = options;
  if (layout !== 'interleaved' && layout !== 'rotate-half') {
    throw new ArgumentError(`rope: layout must be 'interleaved' or 'rotate-half', got ${JSON.stringify(layout)}`);
  }
  if (typeof inverse !== 'boolean') throw new ArgumentError(`rope: inverse must be a boolean, got ${typeof inverse}`);
  if (!Number.isSafeInteger(offset) || Math.abs(offset) > 2147483647) throw new ArgumentError(`rope: offset must be an int32 integer, got ${String(offset)}`);
  assertFloat(x, 'rope', 'x');
  if (x.rank < 2) throw new ShapeError(`rope: x must be [..., T, D], got ${x.describe()}`);
  const d = x.shape[x.rank - 1]!;
  if (options.rotaryDim === undefined && d % 2 !== 0) throw new ShapeError(`rope: the last axis of ${x.describe()} must be even (pairs)`);
  const rotaryDim = options.rotaryDim ?? d;
  // (without a rotaryDim every channel turns, none at all for an empty last axis)
  if (options.rotaryDim !== undefined) checkRotaryDim(rotaryDim, d, 'rope');
  if (scaling !== null) {
    if (typeof scaling !== 'object' || (scaling.type !== 'linear' && scaling.type !== 'ntk')) {
      throw new ArgumentError(`rope: scaling must be { type: 'linear' | 'ntk', factor }, got ${JSON.stringify(scaling)}`);
    }
    positiveNumber(scaling.factor, 'scaling.factor');
  }
  if (positions !== null) {
    assertTensor(positions, 'rope', 'positions');
    assertDTypeOf(positions, 'int32', 'rope', 'positions');
    const lead = x.shape.slice(0, -1);
    const off = lead.length - positions.rank;
    if (off < 0 || positions.shape.some((p, k) => p !== 1 && p !== lead[off + k])) {
      throw new ShapeError(`rope: positions ${fmtShape(positions.shape)} do not broadcast to x's leading axes ${fmtShape(lead)}`);
    }
  }
  const attrs: Record<string, number | boolean> = { inverse, rotateHalf: layout === 'rotate-half', offset };
  if (options.rotaryDim !== undefined) attrs.rotaryDim = rotaryDim;
  if (scaling?.type === 'linear') attrs.positionScale = scaling.factor;
  if (frequencies !== null) {
    if (options.base !== undefined || scaling?.type === 'ntk') throw new ArgumentError('rope: give either frequencies or a base (and NTK scaling), not both');
    assertTensor(frequencies, 'rope', 'frequencies');
    assertDTypeOf(frequencies, 'float32', 'rope', 'frequencies');
    if (frequencies.rank !== 1 || frequencies.shape[0] !== rotaryDim / 2) {
      throw new ShapeError(`rope: frequencies must be [r/2 = ${rotaryDim / 2}], got ${frequencies.describe()}`);
    }
  } else {
    attrs.base = ropeScaledBase(options.base ?? DEFAULT_BASE, rotaryDim, scaling);
  }
  return runKernel1('rope', [x, positions, frequencies], attrs);
}

/**
 * The two channels of every pair of y [..., D] as [..., r/2] tensors: (2i, 2i+1) or (i, i + r/2).
 */
function pairHalves(y: Tensor, rotaryDim: number, rotateHalf: boolean): [Tensor, Tensor] {
  const lead = y.shape.slice(0, -1);
  const half = rotaryDim / 2;
  const zeros = lead.map(() => 0);
  if (rotateHalf) return [slice(y, [...zeros, 0], [...lead, half]), slice(y, [...zeros, half], [...lead, half])];
  const pairs = reshape(slice(y, [...zeros, 0], [...lead, rotaryDim]), [...lead, half, 2]);
  const pick = (c: number) => reshape(slice(pairs, [...zeros, 0, c], [...lead, half, 1]), [...lead, half]);
  return [pick(0), pick(1)];
}

// The rotation is orthogonal, so the gradient in x is the inverse rotation at the same positions.
// In θ_i: d y_a/dφ = −y_b and d y_b/dφ = y_a for the angle φ = ±(m/s)·θ_i, so
// dθ_i = ±Σ_rows (m/s)·(dy_b·y_a − dy_a·y_b).
registerGradient('rope', ([dy], { inputs: [x, positions, frequencies], outputs: [y], attrs }) => {
  if (!dy) return [null, null, null];
  const g = cast(dy, x!.dtype);
  const dx = runKernel1('rope', [g, positions, frequencies], { ...attrs, inverse: !attrs.inverse });
  if (!frequencies) return [dx, null, null];
  // Attributes a direct runKernel call may leave out take the kernel's defaults.
  const lead = x!.shape.slice(0, -1);
  const rotaryDim = (attrs.rotaryDim as number | undefined) ?? x!.shape[x!.rank - 1]!;
  const rotateHalf = Boolean(attrs.rotateHalf);
  const scale = (attrs.positionScale as number | undefined) ?? 1;
  const offset = (attrs.offset as number | undefined) ?? 0;
  const sign = attrs.inverse ? -1 : 1;
  // m/s shaped to broadcast against the pairs [..., T, r/2]: positions' shape (or [T]) and a 1.
  let m: Tensor;
  if (positions) {
    m = mul(add(cast(positions, 'float32'), offset), sign / scale);
    m = reshape(m, [...positions.shape, 1]);
  } else {
    const t = lead[lead.length - 1]!;
    m = tensor(Float32Array.from({ length: t }, (_, i) => (sign * (i + offset)) / scale), [t, 1], { device: x!.device });
  }
  const [ya, yb] = pairHalves(cast(y!, 'float32'), rotaryDim, rotateHalf);
  const [ga, gb] = pairHalves(cast(g, 'float32'), rotaryDim, rotateHalf);
  const dtheta = sumTo(mul(sub(mul(gb, ya), mul(ga, yb)), m), [rotaryDim / 2]);
  return [dx, null, dtheta];
});

/** One point per distance of ropeDecayCurve. */
export interface RopeDecayCurve {
  /** The relative distances r = m − n: 0, step, 2·step, … ≤ maxDistance. */
  distance: number[];
  /** (2/d)·Σ_{j=1}^{d/2} |Σ_{i<j} e^{i·r·θ_i}| at each distance. */
  value: number[];
}

/**
 * RoPE's long-range decay (ALGORITHMS.md §6.1): with h_i = q_i k_i* the pair products and
 * S_j = Σ_{i<j} e^{i(m−n)θ_i}, Abel summation bounds the score by max|h_{i+1} − h_i| · Σ_j |S_j|, and
 * the mean (2/d)·Σ_{j=1}^{d/2} |S_j| falls as the distance |m − n| grows. θ_i = base^(−2i/d);
 * computed in float64. At r = 0 it is (d/2 + 1)/2.
 *
 * Errors: dim not an even integer ≥ 2, base not positive and finite, maxDistance or step not
 * positive integers (E_ARG).
 */
export function ropeDecayCurve(options: { dim: number; base?: number; maxDistance: number; step?: number }): RopeDecayCurve {
  const { dim, base = DEFAULT_BASE, maxDistance, step = 1 } = options;
  const theta = ropeFrequencies(dim, base);
  for (const [name, v] of [['maxDistance', maxDistance], ['step', step]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`ropeDecayCurve: ${name} must be a positive integer, got ${String(v)}`);
  }
  const distance: number[] = [];
  const value: number[] = [];
  for (let r = 0; r <= maxDistance; r += step) {
    let re = 0;
    let im = 0;
    let total = 0;
    for (const t of theta) {
      re += Math.cos(r * t);
      im += Math.sin(r * t);
      total += Math.hypot(re, im);
    }
    distance.push(r);
    value.push(total / theta.length);
  }
  return { distance, value };
}
