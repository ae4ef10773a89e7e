/**
 * Linear algebra (`kx.linalg`): the symmetric eigendecomposition, the thin SVD and the mean and
 * covariance of rows, computed in float64 from float32 input (LAPACK's dsyevd and dgesdd from
 * OpenBLAS on the host; CUDA tensors are copied to the host and back) with float32 results.
 *
 * Signs: an eigenvector, or a left singular vector with its right one, is defined up to sign; each
 * comes with its entry of largest magnitude positive (the first such entry on a tie), so results are
 * reproducible. Where eigenvalues (singular values) repeat, the vectors of that subspace are one
 * orthonormal basis among many: compare reconstructions there, not vectors.
 *
 * No gradients: under valueAndGrad these ops are recorded like any other, and a loss that depends on
 * their outputs fails in the backward pass with E_ARG ("op 'eigh' has no gradient"). Fitting a
 * transform on data that does not depend on watched parameters records nothing.
 */
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { runKernel } from '../kernel.js';
import { Tensor } from '../tensor.js';
import { assertTensor, optionsOf } from './check.js';

export interface EighResult {
  /** The eigenvalues [..., n], ascending (as torch.linalg.eigh). */
  values: Tensor;
  /** The eigenvectors as columns [..., n, n]: column j belongs to values[j]. */
  vectors: Tensor;
}

export interface SvdResult {
  /** The left singular vectors as columns [..., m, k], k = min(m, n). */
  u: Tensor;
  /** The singular values [..., k], descending. */
  s: Tensor;
  /** The right singular vectors as rows [..., k, n]: a = u · diag(s) · vh. */
  vh: Tensor;
}

export interface CovarianceOptions {
  /**
   * Where the rows are centred, as a multiple of their mean: the covariance is
   * (x − β·mean)ᵀ(x − β·mean) / N. Default 1 (the covariance); 0 gives the uncentred second moment
   * xᵀx / N (BERT-whitening's β, ALGORITHMS.md §3).
   */
  beta?: number;
}

export interface CovarianceResult {
  /** The mean of the rows [d]. */
  mean: Tensor;
  /** (x − β·mean)ᵀ(x − β·mean) / N [d, d], exactly symmetric. */
  cov: Tensor;
}

function assertMatrices(op: string, a: unknown): asserts a is Tensor {
  assertTensor(a, op, 'a');
  if (a.dtype !== 'float32') throw new DTypeError(`${op}: a must be float32 (cast halves with a.cast('float32')), got ${a.describe()}`);
  if (a.rank < 2) throw new ShapeError(`${op}: a must be a matrix or a stack of matrices [..., m, n], got ${a.describe()}`);
}

/**
 * The eigendecomposition of the symmetric matrix a [n, n] (or each of a stack [..., n, n]):
 * a = vectors · diag(values) · vectorsᵀ. Only a's lower triangle is read (as torch.linalg.eigh);
 * eigenvalues come ascending. Computed in float64 (LAPACK dsyevd), returned in float32; each
 * eigenvector's entry of largest magnitude is positive.
 *
 * Errors: a not float32 (E_DTYPE), not square (E_SHAPE), with NaN or ±Inf anywhere (E_ARG, naming
 * the first such entry), LAPACK failing to converge (E_ARG, with its info).
 */
export function eigh(a: Tensor): EighResult {
  assertMatrices('eigh', a);
  const [m, n] = a.shape.slice(-2) as [number, number];
  if (m !== n) throw new ShapeError(`eigh: a must be square [..., n, n], got ${a.describe()}`);
  const [values, vectors] = runKernel('eigh', [a]);
  return { values: values!, vectors: vectors! };
}

/**
 * The thin singular value decomposition of a [m, n] (or each of a stack [..., m, n]):
 * a = u · diag(s) · vh with u [m, k], s [k] descending and ≥ 0, vh [k, n], k = min(m, n). Computed in
 * float64 (LAPACK dgesdd), returned in float32; each column of u has its entry of largest magnitude
 * positive, and the matching row of vh is signed with it. Singular vectors of zero (or repeated)
 * singular values are one orthonormal basis of their subspace.
 *
 * Errors: a not float32 (E_DTYPE), of rank below 2 (E_SHAPE), with NaN or ±Inf (E_ARG), LAPACK
 * failing to converge (E_ARG, with its info).
 */
export function svd(a: Tensor): SvdResult {
  assertMatrices('svd', a);
  const [u, s, vh] = runKernel('svd', [a]);
  return { u: u!, s: s!, vh: vh! };
}

/**
 * The mean and covariance of the rows of x [N, d] (samples in rows): mean = Σ x_i / N and
 * cov = Σ (x_i − β·mean)ᵀ(x_i − β·mean) / N, divided by N, not N − 1 (BERT-whitening's Σ,
 * ALGORITHMS.md §3; `options.beta` is its β). Accumulated in float64 (the rows centred in float64,
 * then blocked products), in an order that does not depend on the thread count, so the bits do
 * not either; returned in float32.
 *
 * Errors: x not float32 (E_DTYPE), not [N, d] with N ≥ 1 (E_SHAPE), with NaN or ±Inf (E_ARG, naming
 * the first such entry), beta not a finite number (E_ARG).
 */
export function covariance(x: Tensor, options?: CovarianceOptions): CovarianceResult {
  assertTensor(x, 'covariance', 'x');
  if (x.dtype !== 'float32') throw new DTypeError(`covariance: x must be float32 (cast halves with x.cast('float32')), got ${x.describe()}`);
  if (x.rank !== 2 || x.shape[0] === 0) throw new ShapeError(`covariance: x must be [N, d] with N >= 1 (rows are samples), got ${x.describe()}`);
  const beta = optionsOf(options, 'covariance').beta ?? 1;
  if (typeof beta !== 'number' || !Number.isFinite(beta)) throw new ArgumentError(`covariance: beta must be a finite number, got ${String(beta)}`);
  const [mean, cov] = runKernel('covariance', [x], { beta });
  return { mean: mean!, cov: cov! };
}
