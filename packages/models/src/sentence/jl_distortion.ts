/**
 * How well a projection kept the geometry of N points: every pair's squared distance (or, for
 * sign bits, its angle) before and after, from Gram matrices: ‖v_i − v_j‖² = G_ii + G_jj − 2G_ij.
 * The Gram matrices are computed a block of rows against another (kx.matmul) and read block by
 * block, so N = 10⁴ points take two blocks of chunkRows² floats at a time, not N².
 */
import { ArgumentError, DTypeError, ShapeError, matmul, mul, slice, sum, tidy, type Tensor } from '@kexue/core-cuda';

import { checkEpsilon } from './jl_bounds.js';

/**
 * Pairs closer than this, as a fraction of ‖v_i‖² + ‖v_j‖², are skipped: their squared distance
 * is a difference of float32 Gram entries that cancel, with a relative error near 10⁻⁶·√m / this
 * bound (~10⁻³ at m = 768), too close to the ε being measured. Duplicated points land here.
 */
export const NEAR_DUPLICATE = 1e-3;

export interface DistortionOptions {
  /** Rows a Gram block holds (default 1024: two 4 MiB blocks at a time). */
  chunkRows?: number;
}

/** The squared distances of the pairs against their projections' (`measureDistortion`). */
export interface DistanceDistortion {
  /** Pairs i < j measured. */
  pairs: number;
  /** Pairs skipped as (near) duplicates (NEAR_DUPLICATE). */
  skippedPairs: number;
  /** max |ratio − 1|, ratio = ‖Av_i − Av_j‖² / ‖v_i − v_j‖². */
  maxDistortion: number;
  /** The mean of |ratio − 1|. */
  meanDistortion: number;
  /** The fraction of the pairs with |ratio − 1| ≤ ε. */
  withinEps: number;
  minRatio: number;
  maxRatio: number;
}

/** The LSH angle estimate of sign bits (`measureAngles`). */
export interface AngleEstimate {
  pairs: number;
  /** Pairs skipped because a vector is zero (no angle). */
  skippedPairs: number;
  /** max |θ̂ − θ| in radians, θ̂ = π·(Hamming distance)/n. */
  maxAngleError: number;
  meanAngleError: number;
  /** max |cos θ̂ − cos θ|. */
  maxCosineError: number;
  meanCosineError: number;
  /** The fraction of the pairs with |cos θ̂ − cos θ| ≤ ε. */
  withinEps: number;
  /**
   * The mean of |cos(sign Av_i, sign Av_j) − cos θ|: §7's shorthand taken literally. It does not
   * tend to 0 (the sign vectors' cosine tends to 1 − 2θ/π), which is why θ̂ is the estimate.
   */
  meanSignCosineError: number;
}

/** The Gram entries of one pair: x for the original vectors, y for the projected ones. */
type PairVisitor = (xii: number, xjj: number, xij: number, yii: number, yjj: number, yij: number) => void;

function checkPairs(where: string, original: Tensor, projected: Tensor): void {
  for (const [name, t] of [['original', original], ['projected', projected]] as const) {
    if (t.dtype !== 'float32') throw new DTypeError(`${where}: ${name} must be float32, got ${t.describe()}`);
    if (t.rank !== 2 || t.shape[0]! < 2) throw new ShapeError(`${where}: ${name} must be [N, d] with N >= 2, got ${t.describe()}`);
  }
  if (original.shape[0] !== projected.shape[0]) {
    throw new ShapeError(`${where}: original ${original.describe()} and projected ${projected.describe()} must have the same rows`);
  }
}

/** The rows' squared norms; E_ARG naming the first row with NaN or ±Inf (its norm is not finite), rather than NaN ratios. */
function squaredNorms(x: Tensor, where: string, name: string): Float32Array {
  const norms = tidy(() => sum(mul(x, x), 1).toFloat32Array());
  const bad = norms.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ArgumentError(`${where}: row ${bad} of ${name} is not finite (its squared norm is ${norms[bad]})`);
  return norms;
}

/** rows [start, start + count) of x, times rows [other, other + count2) transposed, read to the host. */
function gramBlock(x: Tensor, start: number, count: number, other: number, count2: number): Float32Array {
  const d = x.shape[1]!;
  return tidy(() => matmul(slice(x, [start, 0], [count, d]), slice(x, [other, 0], [count2, d]), { transB: true }).toFloat32Array());
}

/** Calls visit for every pair i < j, a block of rows against another. */
function forEachPair(where: string, x: Tensor, y: Tensor, chunkRows: number, visit: PairVisitor): void {
  const rows = x.shape[0]!;
  const xNorms = squaredNorms(x, where, 'original');
  const yNorms = squaredNorms(y, where, 'projected');
  for (let i0 = 0; i0 < rows; i0 += chunkRows) {
    const ni = Math.min(chunkRows, rows - i0);
    for (let j0 = i0; j0 < rows; j0 += chunkRows) {
      const nj = Math.min(chunkRows, rows - j0);
      const gx = gramBlock(x, i0, ni, j0, nj);
      const gy = gramBlock(y, i0, ni, j0, nj);
      for (let a = 0; a < ni; a++) {
        const i = i0 + a;
        // on a diagonal block only the pairs above the diagonal
        for (let b = j0 === i0 ? a + 1 : 0; b < nj; b++) {
          const j = j0 + b;
          visit(xNorms[i]!, xNorms[j]!, gx[a * nj + b]!, yNorms[i]!, yNorms[j]!, gy[a * nj + b]!);
        }
      }
    }
  }
}

function chunkRowsOf(options: DistortionOptions, where: string): number {
  const chunkRows = options.chunkRows ?? 1024;
  if (!Number.isSafeInteger(chunkRows) || chunkRows < 1) throw new ArgumentError(`${where}: chunkRows must be a positive integer, got ${String(chunkRows)}`);
  return chunkRows;
}

/** E_ARG rather than means over no pairs (NaN): every pair was skipped. */
function nothingMeasured(where: string, counts: { pairs: number; skippedPairs: number }, why: string): void {
  if (counts.pairs === 0) throw new ArgumentError(`${where}: all ${counts.skippedPairs} pairs ${why}: there is nothing to measure`);
}

/**
 * For the pairs i < j of the rows of original [N, m] and projected [N, n] (row i projected from
 * row i, on one device), the ratios ‖p_i − p_j‖² / ‖v_i − v_j‖²: their largest and mean distance
 * from 1 and the fraction within (1 ± ε). The JL lemma's claim is withinEps = 1. Sums in float64
 * from float32 Gram entries; near-duplicate pairs are skipped and counted (NEAR_DUPLICATE), so
 * no ratio is 0/0. E_ARG for ε outside (0, 1) or when every pair is skipped; E_SHAPE, E_DTYPE for other tensors.
 */
export function measureDistortion(original: Tensor, projected: Tensor, eps: number, options: DistortionOptions = {}): DistanceDistortion {
  checkEpsilon(eps, 'measureDistortion');
  checkPairs('measureDistortion', original, projected);
  const out = { pairs: 0, skippedPairs: 0, maxDistortion: 0, meanDistortion: 0, withinEps: 0, minRatio: Infinity, maxRatio: -Infinity };
  let total = 0;
  let within = 0;
  forEachPair('measureDistortion', original, projected, chunkRowsOf(options, 'measureDistortion'), (xii, xjj, xij, yii, yjj, yij) => {
    const before = xii + xjj - 2 * xij;
    if (before <= NEAR_DUPLICATE * (xii + xjj)) {
      out.skippedPairs++;
      return;
    }
    const ratio = (yii + yjj - 2 * yij) / before;
    const distortion = Math.abs(ratio - 1);
    out.pairs++;
    total += distortion;
    if (distortion <= eps) within++;
    if (distortion > out.maxDistortion) out.maxDistortion = distortion;
    if (ratio < out.minRatio) out.minRatio = ratio;
    if (ratio > out.maxRatio) out.maxRatio = ratio;
  });
  nothingMeasured('measureDistortion', out, 'are (near) duplicates');
  return { ...out, meanDistortion: total / out.pairs, withinEps: within / out.pairs };
}

/**
 * For sign bits [N, n] (±1, RandomProjection kind `sign`) of original [N, m]: the LSH estimate
 * θ̂ = π·h/n of each pair's angle θ, h the Hamming distance (h = (n − ⟨b_i, b_j⟩)/2), against θ
 * itself. Each bit differs with probability θ/π, so h/n → θ/π as n grows and the errors shrink
 * like 1/√n. Pairs with a zero vector are skipped and counted. E_ARG for ε outside (0, 1) or
 * when every pair is skipped; E_SHAPE, E_DTYPE for other tensors.
 */
export function measureAngles(original: Tensor, bits: Tensor, eps: number, options: DistortionOptions = {}): AngleEstimate {
  checkEpsilon(eps, 'measureAngles');
  checkPairs('measureAngles', original, bits);
  const n = bits.shape[1]!;
  const out = { pairs: 0, skippedPairs: 0, maxAngleError: 0, meanAngleError: 0, maxCosineError: 0, meanCosineError: 0, withinEps: 0, meanSignCosineError: 0 };
  let angleTotal = 0;
  let cosineTotal = 0;
  let signCosineTotal = 0;
  let within = 0;
  forEachPair('measureAngles', original, bits, chunkRowsOf(options, 'measureAngles'), (xii, xjj, xij, _yii, _yjj, yij) => {
    if (xii === 0 || xjj === 0) {
      out.skippedPairs++;
      return;
    }
    const cosine = Math.min(1, Math.max(-1, xij / Math.sqrt(xii * xjj)));
    const signCosine = yij / n;
    const estimate = (Math.PI * (1 - signCosine)) / 2;
    const angleError = Math.abs(estimate - Math.acos(cosine));
    const cosineError = Math.abs(Math.cos(estimate) - cosine);
    out.pairs++;
    angleTotal += angleError;
    cosineTotal += cosineError;
    signCosineTotal += Math.abs(signCosine - cosine);
    if (cosineError <= eps) within++;
    if (angleError > out.maxAngleError) out.maxAngleError = angleError;
    if (cosineError > out.maxCosineError) out.maxCosineError = cosineError;
  });
  nothingMeasured('measureAngles', out, 'have a zero vector');
  return { ...out, meanAngleError: angleTotal / out.pairs, meanCosineError: cosineTotal / out.pairs, withinEps: within / out.pairs, meanSignCosineError: signCosineTotal / out.pairs };
}
