/**
 * Randomised SVD as ALGORITHMS.md §7 describes it: for M [a, b] and Q [b, l], take the SVD of the
 * small B = MQ = U_B Σ_B V_Bᵀ and read M ≈ U_B Σ_B (Q V_B)ᵀ. That reading is exactly M Q Qᵀ when Q
 * has orthonormal columns, so the choice of Q is the whole method:
 * - §7's Q, a Gaussian N(0, 1/l) (a JL projection of M's rows): E[QQᵀ] = I and MQ keeps the rows'
 *   norms and inner products within JL's ε, so Σ_B approximates M's singular values, but QᵀQ ≈
 *   (b/l)·I, not I ("≈ orthonormal" holds only for QQᵀ, on average), and Q V_B is not orthonormal;
 *   orthonormalised (`orthonormalize`), M Q Qᵀ is a true projection, onto a random subspace, so its
 *   singular values shrink by about √(l/b): a sketch, not M's top-k SVD;
 * - with `powerIterations` q ≥ 0, Q spans (MᵀM)^q Mᵀ Ω for a Gaussian Ω [a, l] (Halko, Martinsson &
 *   Tropp's range finder, orthonormalised after every product): Q then holds M's leading right
 *   singular directions and the result approaches the top-k SVD, the more so the larger q and
 *   the oversampling l − k.
 * Orthonormal bases come from kx.linalg.svd (the u of a thin SVD). M Q and the products of the
 * range finder are kx.matmul on M's device; the SVDs run in float64 on the host (kx.linalg).
 */
import { ArgumentError, DTypeError, ShapeError, linalg, matmul, slice, tidy, transpose, type Tensor } from '@kexue/core-cuda';

import { RandomProjection } from './jl_projections.js';

export interface RandomizedSvdOptions {
  /** The Philox key of the random matrix; default 0. */
  seed?: number;
  /**
   * Extra columns l − k of Q beyond the k kept (default 0; l is capped at min(a, b)). Give the range
   * finder 5 or more: with l = k its k × k sketch of M's leading directions is a square Gaussian
   * matrix, often nearly singular (σ_min below 2% of σ_max for 3 of 10 seeds at k = 5), and a
   * direction is lost.
   */
  oversample?: number;
  /** §7's Q only: orthonormalise the Gaussian Q before use (default false). */
  orthonormalize?: boolean;
  /** Fit Q to M by the range finder with this many power iterations (default: §7's random Q). */
  powerIterations?: number;
}

/** An orthonormal basis [r, c] of the columns of y [r, c], c ≤ r. */
function orthonormalBasis(y: Tensor): Tensor {
  const { u, s, vh } = linalg.svd(y);
  s.dispose();
  vh.dispose();
  return u;
}

function nonNegativeInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new ArgumentError(`randomizedSvd: ${what} must be a non-negative integer, got ${String(value)}`);
  return value;
}

/** Q [b, l]: §7's Gaussian (optionally orthonormalised), or the range finder's basis. */
function sketchBasis(m: Tensor, l: number, options: RandomizedSvdOptions): Tensor {
  const [rows, cols] = m.shape as [number, number];
  const seed = options.seed ?? 0;
  const device = m.device;
  if (options.powerIterations === undefined) {
    const q = RandomProjection.create(cols, l, { seed, device });
    return options.orthonormalize === true ? orthonormalBasis(q.matrix) : q.matrix;
  }
  const iterations = nonNegativeInteger(options.powerIterations, 'powerIterations');
  const omega = RandomProjection.create(rows, l, { seed, device }).matrix;
  let q = orthonormalBasis(matmul(m, omega, { transA: true })); // Mᵀ Ω [b, l]
  for (let i = 0; i < iterations; i++) {
    const left = orthonormalBasis(matmul(m, q)); // [a, l]
    q = orthonormalBasis(matmul(m, left, { transA: true }));
  }
  return q;
}

/**
 * The rank-k approximation M ≈ u · diag(s) · vh of m [a, b] (float32) from a random sketch of l =
 * min(k + oversample, a, b) columns (see the module comment for what each Q gives): u [a, k]
 * (orthonormal columns), s [k] descending, vh [k, b] = (Q V_B)ᵀ's first k rows, on m's device.
 * Seeded: the same seed gives the same result. E_DTYPE for m not float32, E_SHAPE for m not a
 * matrix, E_ARG for k not in 1..min(a, b) or a bad option.
 */
export function randomizedSvd(m: Tensor, k: number, options: RandomizedSvdOptions = {}): linalg.SvdResult {
  if (m.dtype !== 'float32') throw new DTypeError(`randomizedSvd: m must be float32, got ${m.describe()}`);
  if (m.rank !== 2) throw new ShapeError(`randomizedSvd: m must be a matrix [a, b], got ${m.describe()}`);
  const [rows, cols] = m.shape as [number, number];
  if (!Number.isSafeInteger(k) || k < 1 || k > Math.min(rows, cols)) {
    throw new ArgumentError(`randomizedSvd: k must be an integer in 1..${Math.min(rows, cols)} (min of m's dimensions), got ${String(k)}`);
  }
  const l = Math.min(k + nonNegativeInteger(options.oversample ?? 0, 'oversample'), rows, cols);
  return tidy(() => {
    const q = sketchBasis(m, l, options);
    const sketch = linalg.svd(matmul(m, q)); // B = MQ [a, l] = U_B Σ_B V_Bᵀ
    const v = matmul(q, sketch.vh, { transB: true }); // Q V_B [b, l]
    return { u: slice(sketch.u, [0, 0], [rows, k]), s: slice(sketch.s, [0], [k]), vh: transpose(slice(v, [0, 0], [cols, k])) };
  });
}
