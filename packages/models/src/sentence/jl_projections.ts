/**
 * Seeded random projections v → Av from R^m to R^n (ALGORITHMS.md §7): Gaussian, the sparse ones
 * of Achlioptas and of Li, Hastie & Church, and the sign bits of LSH.
 *
 * The matrix is drawn on the host from the core's Philox-4x32-10 stream (PhiloxStream: key = seed,
 * stream PROJECTION_STREAM), one or two words an entry in row-major order, and copied once to the
 * device: the same seed gives the same matrix, bit for bit, on every device and build, and drawing
 * costs ~55 ns a word (768 × 2000 Gaussians: 0.4 s), small beside what is projected and measured
 * (docs/DESIGN.md, Randomness).
 */
import { ArgumentError, DTypeError, PhiloxStream, ShapeError, matmul, resolveDevice, tensor, type Tensor } from '@kexue/core-cuda';

import { checkDimension } from './jl_bounds.js';

/** The Philox stream (counter word 3) of projection matrices: 'JLPR'. */
export const PROJECTION_STREAM = 0x4a4c5052;

/** The kinds of projection; `sign` is Gaussian followed by sign(·), the bits of SimHash-style LSH. */
export const PROJECTION_KINDS = ['gaussian', 'achlioptas', 'very-sparse', 'sign'] as const;
export type ProjectionKind = (typeof PROJECTION_KINDS)[number];

export interface RandomProjectionOptions {
  /** Default 'gaussian'. */
  kind?: ProjectionKind;
  /** The Philox key, an integer in [0, 2^53); default 0. */
  seed?: number;
  /** Where the matrix lives and the products run: 'cpu' (default), 'cuda', 'cuda:N'. */
  device?: string;
}

const TWO_32 = 2 ** 32;

/** A uniform number in (0, 1) from one word (never 0, so its log is finite). */
function open01(word: number): number {
  return (word + 0.5) / TWO_32;
}

/** n·m entries N(0, std²) by Box–Muller, two normals from two words. */
function gaussianEntries(size: number, std: number, rng: PhiloxStream): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const radius = std * Math.sqrt(-2 * Math.log(open01(rng.nextUint32())));
    const angle = 2 * Math.PI * open01(rng.nextUint32());
    out[i] = radius * Math.cos(angle);
    if (i + 1 < size) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

/** Entries +value with probability p/2, −value with p/2, 0 otherwise: one word each. */
function sparseSignEntries(size: number, value: number, p: number, rng: PhiloxStream): Float32Array {
  const out = new Float32Array(size);
  const half = (p / 2) * TWO_32;
  const whole = p * TWO_32;
  for (let i = 0; i < size; i++) {
    const word = rng.nextUint32();
    if (word < half) out[i] = value;
    else if (word < whole) out[i] = -value;
  }
  return out;
}

/**
 * A random linear map A: R^m → R^n, stored transposed as `matrix` [m, n] so that
 * `project(vectors [N, m])` is the one product vectors · Aᵀ → [N, n]. Every kind has
 * E[‖Av‖²] = ‖v‖² (entries of mean 0 and variance 1/n):
 * - `gaussian`: A_ij ~ N(0, 1/n), the lemma's matrix;
 * - `achlioptas`: ±√(3/n) with probability 1/6 each, 0 with 2/3 (a third of the entries);
 * - `very-sparse` (Li, Hastie & Church 2006, s = √m): ±√(s/n) with probability 1/(2s) each, 0
 *   otherwise, so a row has about √m non-zeros;
 * - `sign`: the Gaussian matrix, then sign(Av) ∈ {−1, +1}^n (0 counts as +1): LSH bits. For a pair
 *   at angle θ each bit differs with probability θ/π, so π·(Hamming distance)/n estimates θ and
 *   its cosine estimates cos θ (jl_distortion.ts measures this). §7's shorthand
 *   "cos(v_i, v_j) ≈ cos(sign(Av_i), sign(Av_j))" is only that estimate's content: the cosine of
 *   the sign vectors themselves tends to 1 − 2θ/π, which equals cos θ only at θ = 0, π/2, π.
 */
export class RandomProjection {
  readonly kind: ProjectionKind;
  readonly seed: number;
  /** m, the dimension of the vectors projected. */
  readonly inputDimension: number;
  /** n, the dimension they are projected to. */
  readonly outputDimension: number;
  /** Aᵀ [m, n], float32 on the projection's device. */
  readonly matrix: Tensor;

  private constructor(kind: ProjectionKind, seed: number, matrix: Tensor) {
    this.kind = kind;
    this.seed = seed;
    this.matrix = matrix;
    [this.inputDimension, this.outputDimension] = matrix.shape as [number, number];
  }

  /**
   * Draws A: R^m → R^n of `options.kind` from `options.seed`. E_ARG for m or n not a positive
   * integer, an unknown kind, a seed outside [0, 2^53) or a bad device.
   */
  static create(inputDimension: number, outputDimension: number, options: RandomProjectionOptions = {}): RandomProjection {
    const m = checkDimension(inputDimension, 'RandomProjection: input');
    const n = checkDimension(outputDimension, 'RandomProjection: output');
    const kind = options.kind ?? 'gaussian';
    if (!PROJECTION_KINDS.includes(kind)) throw new ArgumentError(`RandomProjection: kind must be one of ${PROJECTION_KINDS.join(', ')}, got ${String(kind)}`);
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new ArgumentError(`RandomProjection: seed must be an integer in [0, 2^53), got ${String(seed)}`);
    const device = resolveDevice(options.device);
    const rng = new PhiloxStream(seed, 0, PROJECTION_STREAM);
    const size = m * n;
    let entries: Float32Array;
    if (kind === 'achlioptas') entries = sparseSignEntries(size, Math.sqrt(3 / n), 1 / 3, rng);
    else if (kind === 'very-sparse') {
      const s = Math.sqrt(m);
      entries = sparseSignEntries(size, Math.sqrt(s / n), 1 / s, rng);
    } else entries = gaussianEntries(size, 1 / Math.sqrt(n), rng);
    return new RandomProjection(kind, seed, tensor(entries, [m, n], { device }));
  }

  /**
   * Av for each row v of vectors [N, m] (float32, on the projection's device): [N, n], one matrix
   * product; for `sign`, its signs as ±1 (float32, so that Hamming distances come from a Gram
   * matrix). E_DTYPE, E_SHAPE for other vectors.
   */
  project(vectors: Tensor): Tensor {
    if (vectors.dtype !== 'float32') throw new DTypeError(`RandomProjection.project: vectors must be float32, got ${vectors.describe()}`);
    if (vectors.rank !== 2 || vectors.shape[1] !== this.inputDimension) {
      throw new ShapeError(`RandomProjection.project: vectors must be [N, ${this.inputDimension}], got ${vectors.describe()}`);
    }
    const projected = matmul(vectors, this.matrix);
    if (this.kind !== 'sign') return projected;
    try {
      const values = projected.toFloat32Array();
      const bits = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) bits[i] = values[i]! < 0 ? -1 : 1;
      return tensor(bits, projected.shape, { device: projected.device });
    } finally {
      projected.dispose();
    }
  }

  dispose(): void {
    this.matrix.dispose();
  }
}
