/**
 * The bounds of the Johnson–Lindenstrauss lemma as ALGORITHMS.md §7 states them: how many
 * dimensions n a random projection A ~ N(0, 1/n) of N points needs for every pairwise squared
 * distance to stay within (1 ± ε), and the union-bound failure probabilities behind them.
 */
import { ArgumentError } from '@kexue/core-cuda';

/** The constant of the dimension rule n > 8.33·ln N (word embeddings, attention head sizes; §7). */
export const EMBEDDING_DIMENSION_FACTOR = 8.33;

/** ε in (0, 1) (E_ARG otherwise). */
export function checkEpsilon(eps: number, where: string): number {
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) throw new ArgumentError(`${where}: ε must be a number in (0, 1), got ${String(eps)}`);
  return eps;
}

/** N, the number of points: an integer ≥ 2 (one point has no pairs; E_ARG otherwise). */
export function checkPointCount(points: number, where: string): number {
  if (!Number.isSafeInteger(points) || points < 2) throw new ArgumentError(`${where}: the number of points N must be an integer >= 2, got ${String(points)}`);
  return points;
}

/** n, a projected dimension: a positive integer (E_ARG otherwise). */
export function checkDimension(dimension: number, where: string): number {
  if (!Number.isSafeInteger(dimension) || dimension < 1) throw new ArgumentError(`${where}: the dimension n must be a positive integer, got ${String(dimension)}`);
  return dimension;
}

/** c·ln N / ε², the form of both dimension bounds. */
function logBound(c: number, points: number, eps: number, where: string): number {
  return (c * Math.log(checkPointCount(points, where))) / checkEpsilon(eps, where) ** 2;
}

/** 24·ln N / ε²: above it, all pairs of N points keep their squared distances within (1 ± ε) with probability ≥ 1 − 1/N. */
export function jlDimensionBound(points: number, eps: number): number {
  return logBound(24, points, eps, 'jlDimensionBound');
}

/** 16·ln N / ε²: above it the success probability is only ≥ 1/N, which proves that such a projection exists. */
export function jlExistenceDimensionBound(points: number, eps: number): number {
  return logBound(16, points, eps, 'jlExistenceDimensionBound');
}

/** The smallest integer n > 24·ln N / ε² (the dimension `kexue jl --dim auto` projects to). */
export function jlDimension(points: number, eps: number): number {
  return Math.floor(jlDimensionBound(points, eps)) + 1;
}

/** 8.33·ln N: §7's rule for an embedding (or attention head) size that can hold N items (N = 512 tokens: 52). */
export function embeddingDimensionBound(points: number): number {
  return EMBEDDING_DIMENSION_FACTOR * Math.log(checkPointCount(points, 'embeddingDimensionBound'));
}

/** exp(−ε²n/8), the Cramér–Chernoff tail every bound here is made of. */
function chernoffTail(dimension: number, eps: number, where: string): number {
  return Math.exp(-(checkEpsilon(eps, where) ** 2) * checkDimension(dimension, where) / 8);
}

/** The unit-norm lemma: P(|‖u‖² − 1| ≥ ε) ≤ 2·exp(−ε²n/8) for u with n i.i.d. N(0, 1/n) entries (capped at 1). */
export function normDeviationBound(dimension: number, eps: number): number {
  return Math.min(1, 2 * chernoffTail(dimension, eps, 'normDeviationBound'));
}

/** The orthogonality lemma: P(|⟨u, v⟩| ≥ ε) ≤ 4·exp(−ε²n/8) for independent u, v ~ N(0, 1/n) (capped at 1). */
export function orthogonalityBound(dimension: number, eps: number): number {
  return Math.min(1, 4 * chernoffTail(dimension, eps, 'orthogonalityBound'));
}

/**
 * The distance form's failure probability: some pair of the N points leaves (1 ± ε), at most
 * N(N − 1)·exp(−ε²n/8) (the unit-norm lemma for each of the N(N − 1)/2 differences, union bound;
 * capped at 1). At n > 24·ln N/ε² it is below 1/N; at 16·ln N/ε² it is 1 − 1/N.
 */
export function jlFailureBound(points: number, dimension: number, eps: number): number {
  return unionBound(1, points, dimension, eps, 'jlFailureBound');
}

/** min(1, c·N(N − 1)·exp(−ε²n/8)): the union bound over the pairs of N points, c events a pair. */
function unionBound(c: number, points: number, dimension: number, eps: number, where: string): number {
  const n = checkPointCount(points, where);
  return Math.min(1, c * n * (n - 1) * chernoffTail(dimension, eps, where));
}

/**
 * The inner-product form's failure probability, for unit vectors: some |⟨Av_i, Av_j⟩ − ⟨v_i, v_j⟩|
 * exceeds ε, at most 2N(N − 1)·exp(−ε²n/8) (4⟨u, v⟩ = ‖u + v‖² − ‖u − v‖²: both the sums and the
 * differences of the N(N − 1)/2 pairs must keep their norms; capped at 1). Below 2/N at
 * n > 24·ln N/ε², so the form holds with probability ≥ (N − 2)/N.
 */
export function jlInnerProductFailureBound(points: number, dimension: number, eps: number): number {
  return unionBound(2, points, dimension, eps, 'jlInnerProductFailureBound');
}
