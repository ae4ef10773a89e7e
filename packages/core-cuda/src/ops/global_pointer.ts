/**
 * GlobalPointer scoring with masks and the multilabel categorical cross-entropy, dense and sparse
 * (ALGORITHMS.md §2.2–2.5), as fused native ops with gradients. The score matrix is masked by
 * select (−∞), never by "x·mask − 1e12"; the losses skip −∞ scores and always include the extra 0
 * element of their logsumexps, so a fully masked row gives a finite loss and no NaN.
 */
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { runKernel, runKernel1 } from '../kernel.js';
import { dispose } from '../memory.js';
import { fmtShape, sameShape } from '../shape.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { assertDTypeOf, assertFloat } from './check.js';
import { mean, sum } from './reduce.js';
import { reshape } from './shape.js';

export interface GlobalPointerOptions {
  /** uint8 [B, n], 1 = real token: spans touching a padding token are −∞. Default: all real. */
  mask?: Tensor | null;
  /**
   * Per-head term of the span's start position, [B, H, n] (the efficient head's odd rows); given
   * together with `end`. q and k may then have one shared head (G = 1) or H heads.
   */
  start?: Tensor | null;
  /** Per-head term of the span's end position, [B, H, n] (the efficient head's even rows). */
  end?: Tensor | null;
  /** Keep only spans with end ≥ start (the lower triangle is −∞). Default true. */
  tril?: boolean;
  /** Multiplies q·k. Default 1/√d. */
  scale?: number;
}

/**
 * GlobalPointer span scores: s[b,h,i,j] = scale·⟨q[b,g,i], k[b,g,j]⟩ + start[b,h,i] + end[b,h,j]
 * for q, k [B, G, n, d] (rotated by RoPE beforehand if wanted) and G = H (the original head) or
 * G = 1 (the efficient head's shared scores, broadcast over the H heads of start/end). Entries
 * where token i or j is padding, or (tril) j < i, are −∞. Returns [B, H, n, n] in q's dtype.
 * Differentiable in q, k, start and end (masked entries pass no gradient). Errors: E_SHAPE for
 * mismatched shapes, E_DTYPE for a non-uint8 mask or mixed float dtypes, E_ARG for start without
 * end (or the reverse) or a bad scale.
 */
export function globalPointerScores(q: Tensor, k: Tensor, options: GlobalPointerOptions = {}): Tensor {
  assertFloat(q, 'globalPointerScores', 'q');
  assertFloat(k, 'globalPointerScores', 'k');
  if (q.rank !== 4) throw new ShapeError(`globalPointerScores: q must be [B, G, n, d], got ${q.describe()}`);
  if (!sameShape(q.shape, k.shape)) throw new ShapeError(`globalPointerScores: k ${fmtShape(k.shape)} must have q's shape ${fmtShape(q.shape)}`);
  if (k.dtype !== q.dtype) throw new DTypeError(`globalPointerScores: q and k must share a dtype, got ${q.dtype} and ${k.dtype}`);
  const [B, G, n, d] = q.shape as [number, number, number, number];
  const { mask = null, start = null, end = null, tril = true } = options;
  if ((start === null) !== (end === null)) throw new ArgumentError('globalPointerScores: start and end must be given together');
  if (start !== null && end !== null) {
    assertFloat(start, 'globalPointerScores', 'start');
    assertFloat(end, 'globalPointerScores', 'end');
    if (start.rank !== 3 || start.shape[0] !== B || start.shape[2] !== n) {
      throw new ShapeError(`globalPointerScores: start must be [${B}, H, ${n}], got ${start.describe()}`);
    }
    if (!sameShape(start.shape, end.shape)) throw new ShapeError(`globalPointerScores: end ${fmtShape(end.shape)} must have start's shape ${fmtShape(start.shape)}`);
    if (start.dtype !== q.dtype || end.dtype !== q.dtype) throw new DTypeError(`globalPointerScores: start and end must be ${q.dtype} like q`);
    const H = start.shape[1]!;
    if (G !== H && G !== 1) throw new ShapeError(`globalPointerScores: q has ${G} heads and start/end ${H}; they must match or q must have one`);
  }
  if (mask !== null) {
    assertDTypeOf(mask, 'uint8', 'globalPointerScores', 'mask (1 = real token)');
    if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== n) {
      throw new ShapeError(`globalPointerScores: mask must be [${B}, ${n}], got ${mask.describe()}`);
    }
  }
  if (typeof tril !== 'boolean') throw new ArgumentError(`globalPointerScores: tril must be a boolean, got ${String(tril)}`);
  const scale = options.scale ?? (d > 0 ? 1 / Math.sqrt(d) : 1);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ArgumentError(`globalPointerScores: scale must be a finite number, got ${String(scale)}`);
  return runKernel1('global_pointer', [q, k, mask, start, end], { scale, tril });
}

registerGradient('global_pointer', ([dy], { inputs: [q, k, mask, start, end], attrs }) => {
  if (!dy) return [null, null, null, null, null];
  const [dq, dk, ds, de] = runKernel('global_pointer_backward', [q!, k!, mask ?? null, start ?? null, end ?? null, dy], attrs);
  if (!start) dispose([ds!, de!]);
  return [dq, dk, null, start ? ds : null, start ? de : null];
});

/** How per-row losses are combined: their mean (default), their sum, or none (one loss per row). */
export type LossReduction = 'mean' | 'sum' | 'none';

function reduceRows(loss: Tensor, lead: readonly number[], reduction: LossReduction | undefined, op: string): Tensor {
  const r = reduction ?? 'mean';
  try {
    if (r === 'none') return reshape(loss, lead);
    if (r === 'mean') return mean(loss);
    if (r === 'sum') return sum(loss);
    throw new ArgumentError(`${op}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(r)}`);
  } finally {
    loss.dispose(); // deferred while a gradient tape needs it
  }
}

export interface MultilabelCEOptions {
  /** Default 'mean' over all rows (GlobalPointer: mean over B·heads for scores [B, heads, n·n]). */
  reduction?: LossReduction;
}

/**
 * Multilabel categorical cross-entropy (ALGORITHMS.md §2.4) of scores [..., C] against labels of
 * the same shape (1 positive, 0 negative, values in between soft):
 *   L = ln(1 + Σ_i (1−t_i)·e^{s_i}) + ln(1 + Σ_i t_i·e^{−s_i}) per row,
 * class i predicted iff s_i > 0. Scores of −∞ (masked spans) take part in neither sum. The losses
 * are float32 (accumulated in float32 for every dtype); reduced per `reduction`. labels must have
 * the scores' shape and dtype. Differentiable in the scores (not the labels).
 */
export function multilabelCrossEntropy(scores: Tensor, labels: Tensor, options: MultilabelCEOptions = {}): Tensor {
  assertFloat(scores, 'multilabelCrossEntropy', 'scores');
  assertFloat(labels, 'multilabelCrossEntropy', 'labels');
  if (scores.rank < 1) throw new ShapeError(`multilabelCrossEntropy: scores must be [..., C], got ${scores.describe()}`);
  if (!sameShape(scores.shape, labels.shape)) {
    throw new ShapeError(`multilabelCrossEntropy: labels ${fmtShape(labels.shape)} must have the scores' shape ${fmtShape(scores.shape)}`);
  }
  if (labels.dtype !== scores.dtype) throw new DTypeError(`multilabelCrossEntropy: labels are ${labels.dtype} but scores are ${scores.dtype}`);
  const C = scores.shape[scores.rank - 1]!;
  const lead = scores.shape.slice(0, -1);
  const rows = [reshape(scores, [-1, C]), reshape(labels, [-1, C])];
  const [loss, lneg, lpos] = runKernel('multilabel_ce', rows);
  dispose([lneg!, lpos!, ...rows]);
  return reduceRows(loss!, lead, options.reduction, 'multilabelCrossEntropy');
}

registerGradient('multilabel_ce', ([dloss], { inputs: [scores, labels], outputs: [, lneg, lpos] }) => [
  dloss ? runKernel1('multilabel_ce_backward', [scores!, labels!, lneg!, lpos!, dloss]) : null,
  null,
]);

export interface SparseMultilabelCEOptions {
  /**
   * Class 0 is padding (bert4keras' mask_zero): index 0 in the labels is ignored and class 0 left
   * out of every sum. GlobalPointer's flattened spans use it (span (0, 0) is [CLS], [CLS]).
   * Default false.
   */
  maskZero?: boolean;
  /** The clip of 1 − e^{b−a} from below (Keras' epsilon). Default 1e-7. */
  epsilon?: number;
  /** Default 'mean' over all rows. */
  reduction?: LossReduction;
}

/**
 * Sparse multilabel categorical cross-entropy (ALGORITHMS.md §2.5): scores [..., C] and int32
 * positive class indices [..., P] (pad with 0 and set maskZero). Per row, with A all classes:
 *   pos = ln(1 + Σ_P e^{−s}), a = ln(1 + Σ_A e^{s}), b = ln Σ_P e^{s},
 *   L = pos + a + ln(clip(1 − e^{b−a}, epsilon, 1)).
 * Equal to the dense loss for the same positives; a repeated index counts twice (as the reference).
 * Float32 losses, reduced per `reduction`. An index outside [0, C) → E_ARG. Differentiable in the
 * scores.
 */
export function sparseMultilabelCrossEntropy(scores: Tensor, indices: Tensor, options: SparseMultilabelCEOptions = {}): Tensor {
  assertFloat(scores, 'sparseMultilabelCrossEntropy', 'scores');
  assertDTypeOf(indices, 'int32', 'sparseMultilabelCrossEntropy', 'indices');
  if (scores.rank < 1) throw new ShapeError(`sparseMultilabelCrossEntropy: scores must be [..., C], got ${scores.describe()}`);
  const lead = scores.shape.slice(0, -1);
  if (indices.rank !== scores.rank || !sameShape(indices.shape.slice(0, -1), lead)) {
    throw new ShapeError(`sparseMultilabelCrossEntropy: indices must be [${[...lead, 'P'].join(', ')}], got ${indices.describe()}`);
  }
  const { maskZero = false, epsilon = 1e-7 } = options;
  if (typeof maskZero !== 'boolean') throw new ArgumentError(`sparseMultilabelCrossEntropy: maskZero must be a boolean, got ${String(maskZero)}`);
  if (typeof epsilon !== 'number' || !(epsilon > 0 && epsilon < 1)) {
    throw new ArgumentError(`sparseMultilabelCrossEntropy: epsilon must be in (0, 1), got ${String(epsilon)}`);
  }
  const C = scores.shape[scores.rank - 1]!;
  const P = indices.shape[indices.rank - 1]!;
  const rows = [reshape(scores, [-1, C]), reshape(indices, [-1, P])];
  const [loss, a, b, pos] = runKernel('sparse_multilabel_ce', rows, { maskZero, epsilon });
  dispose([a!, b!, pos!, ...rows]);
  return reduceRows(loss!, lead, options.reduction, 'sparseMultilabelCrossEntropy');
}

registerGradient('sparse_multilabel_ce', ([dloss], { inputs: [scores, indices], outputs: [, a, b, pos], attrs }) => [
  dloss ? runKernel1('sparse_multilabel_ce_backward', [scores!, indices!, a!, b!, pos!, dloss], attrs) : null,
  null,
]);
