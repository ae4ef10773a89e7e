/**
 * The experiment of `kexue jl`: project N vectors to n dimensions (n from the bound of §7 or
 * given), measure what happened to their pairwise distances (or, for sign bits, angles) and set
 * it beside the bound, as JSON or as a table.
 */
import { ArgumentError, PhiloxStream, ShapeError, embedding, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import {
  checkDimension,
  checkEpsilon,
  embeddingDimensionBound,
  jlDimension,
  jlDimensionBound,
  jlExistenceDimensionBound,
  jlFailureBound,
  jlInnerProductFailureBound,
} from './jl_bounds.js';
import { measureAngles, measureDistortion, type AngleEstimate, type DistanceDistortion } from './jl_distortion.js';
import { RandomProjection, type ProjectionKind } from './jl_projections.js';

/** The Philox stream (counter word 3) of the rows sampled for measuring: 'JLSM'. */
export const SAMPLE_STREAM = 0x4a4c534d;

/** Pairs measured by default: all pairs of up to 3,162 vectors. */
export const DEFAULT_MAX_PAIRS = 5_000_000;

export interface JlOptions {
  /** ε in (0, 1). */
  eps: number;
  /** n, or 'auto' (default): the smallest n > 24·ln N/ε². */
  dimension?: number | 'auto';
  /** Default 'gaussian'. */
  kind?: ProjectionKind;
  /** The Philox key of the matrix and of the sampled rows; default 0. */
  seed?: number;
  /** At most this many pairs are measured (default DEFAULT_MAX_PAIRS): all pairs of a seeded sample of rows. */
  maxPairs?: number;
}

/** §7's numbers for N points and ε, and its failure bounds at the n projected to. */
export interface JlBound {
  /** 24·ln N/ε². */
  dimension: number;
  /** 16·ln N/ε² (existence only). */
  existenceDimension: number;
  /** 8.33·ln N. */
  embeddingDimension: number;
  /** N(N − 1)·exp(−ε²n/8) capped at 1: the chance that some pair leaves (1 ± ε). */
  failureProbability: number;
  /** 2N(N − 1)·exp(−ε²n/8) capped at 1: the inner-product form's, for unit vectors. */
  innerProductFailureProbability: number;
}

export interface JlReport {
  kind: ProjectionKind;
  seed: number;
  eps: number;
  /** N, the vectors projected. */
  points: number;
  /** m. */
  inputDimension: number;
  /** n. */
  dimension: number;
  bound: JlBound;
  /** The rows whose pairs were measured (all N, or a seeded sample under maxPairs). */
  measuredRows: number;
  /** Squared distances before and after (the linear kinds). */
  distances?: DistanceDistortion;
  /** The LSH angle estimate (kind `sign`). */
  angles?: AngleEstimate;
}

/** The largest k with k(k − 1)/2 ≤ maxPairs. */
function rowsForPairs(maxPairs: number): number {
  let k = Math.floor((1 + Math.sqrt(1 + 8 * maxPairs)) / 2);
  while ((k * (k - 1)) / 2 > maxPairs) k--;
  return k;
}

/** k distinct rows of N, drawn from the seed (a partial Fisher–Yates shuffle), ascending. */
function sampleRows(points: number, k: number, seed: number): Int32Array {
  const order = Int32Array.from({ length: points }, (_, i) => i);
  const rng = new PhiloxStream(seed, 0, SAMPLE_STREAM);
  for (let i = 0; i < k; i++) {
    const j = i + rng.nextBelow(points - i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.slice(0, k).sort();
}

/**
 * Projects vectors [N, m] (float32, N ≥ 2) with a RandomProjection of `options` and measures the
 * result: the distance distortion (measureDistortion) for the linear kinds, the angle estimate
 * (measureAngles) for `sign`, over all pairs or those of a seeded sample of rows when N(N − 1)/2
 * exceeds maxPairs. Returns the projected vectors [N, n] (the caller owns them) and the report.
 * E_ARG for ε outside (0, 1), n or maxPairs not a positive integer; E_SHAPE for vectors that are not
 * [N, m] with N ≥ 2.
 */
export function runJl(vectors: Tensor, options: JlOptions): { projected: Tensor; report: JlReport } {
  const eps = checkEpsilon(options.eps, 'jl');
  if (vectors.rank !== 2 || vectors.shape[0]! < 2) throw new ShapeError(`jl: vectors must be [N, m] with N >= 2 (pairs are measured), got ${vectors.describe()}`);
  const [points, inputDimension] = vectors.shape as [number, number];
  const dimension = options.dimension === undefined || options.dimension === 'auto' ? jlDimension(points, eps) : checkDimension(options.dimension, 'jl');
  const maxPairs = options.maxPairs ?? DEFAULT_MAX_PAIRS;
  if (!Number.isSafeInteger(maxPairs) || maxPairs < 1) throw new ArgumentError(`jl: maxPairs must be a positive integer, got ${String(maxPairs)}`);
  const seed = options.seed ?? 0;
  const projection = RandomProjection.create(inputDimension, dimension, { kind: options.kind ?? 'gaussian', seed, device: vectors.device });
  let projected: Tensor;
  try {
    projected = projection.project(vectors);
  } finally {
    projection.dispose();
  }
  const measuredRows = Math.min(points, rowsForPairs(maxPairs));
  const measure = (x: Tensor, y: Tensor): Pick<JlReport, 'distances' | 'angles'> =>
    projection.kind === 'sign' ? { angles: measureAngles(x, y, eps) } : { distances: measureDistortion(x, y, eps) };
  let measured: Pick<JlReport, 'distances' | 'angles'>;
  try {
    measured =
      measuredRows === points
        ? measure(vectors, projected)
        : tidy(() => {
            const ids = tensor(sampleRows(points, measuredRows, seed), [measuredRows], { dtype: 'int32', device: vectors.device });
            return measure(embedding(ids, vectors), embedding(ids, projected));
          });
  } catch (err) {
    projected.dispose();
    throw err;
  }
  const report: JlReport = {
    kind: projection.kind,
    seed,
    eps,
    points,
    inputDimension,
    dimension,
    bound: {
      dimension: jlDimensionBound(points, eps),
      existenceDimension: jlExistenceDimensionBound(points, eps),
      embeddingDimension: embeddingDimensionBound(points),
      failureProbability: jlFailureBound(points, dimension, eps),
      innerProductFailureProbability: jlInnerProductFailureBound(points, dimension, eps),
    },
    measuredRows,
    ...measured,
  };
  return { projected, report };
}

const percent = (x: number): string => `${(100 * x).toFixed(3)}%`;

/** The report as the table `kexue jl` prints. */
export function formatJlReport(report: JlReport, source = 'vectors'): string {
  const { bound, eps, points } = report;
  const n = report.dimension;
  const lines = [
    `${source}: ${points} vectors of dimension ${report.inputDimension} -> ${n} (${report.kind}, seed ${report.seed})`,
    `bound (ALGORITHMS.md §7), N = ${points}, ε = ${eps}:`,
    `  24 ln N / ε²   ${bound.dimension.toFixed(1).padStart(10)}   n above it: all pairs within (1 ± ε) with probability ≥ 1 − 1/N`,
    `  16 ln N / ε²   ${bound.existenceDimension.toFixed(1).padStart(10)}   existence only (probability ≥ 1/N)`,
    `  8.33 ln N      ${bound.embeddingDimension.toFixed(1).padStart(10)}   the embedding-dimension rule`,
    `  at n = ${n}: P(some pair outside (1 ± ε)) ≤ ${bound.failureProbability.toPrecision(3)}` + (n >= report.inputDimension ? ` (n ≥ m = ${report.inputDimension}: no reduction)` : ''),
  ];
  const pairs = (report.distances ?? report.angles)!;
  const sampled = report.measuredRows < points ? ` (a sample of ${report.measuredRows} vectors)` : '';
  lines.push(`measured over ${pairs.pairs} pairs${sampled}${pairs.skippedPairs > 0 ? `, ${pairs.skippedPairs} skipped` : ''}:`);
  if (report.distances) {
    const d = report.distances;
    lines.push(
      `  max |ratio − 1|    ${d.maxDistortion.toFixed(4)}    (ratio = ‖Av_i − Av_j‖² / ‖v_i − v_j‖²)`,
      `  mean |ratio − 1|   ${d.meanDistortion.toFixed(4)}`,
      `  ratio range        [${d.minRatio.toFixed(4)}, ${d.maxRatio.toFixed(4)}]`,
      `  within (1 ± ε)     ${percent(d.withinEps)}`,
    );
  } else {
    const a = report.angles!;
    lines.push(
      `  LSH: θ̂ = π·hamming/n; the JL bound above is for the linear kinds`,
      `  max |θ̂ − θ|              ${a.maxAngleError.toFixed(4)} rad`,
      `  mean |θ̂ − θ|             ${a.meanAngleError.toFixed(4)} rad`,
      `  max |cos θ̂ − cos θ|      ${a.maxCosineError.toFixed(4)}`,
      `  mean |cos θ̂ − cos θ|     ${a.meanCosineError.toFixed(4)}`,
      `  |cos θ̂ − cos θ| ≤ ε      ${percent(a.withinEps)}`,
      `  mean |cos(bits) − cos θ| ${a.meanSignCosineError.toFixed(4)}   (the sign vectors' own cosine: tends to 1 − 2θ/π, not cos θ)`,
    );
  }
  return `${lines.join('\n')}\n`;
}
