/**
 * GlobalPointer and Efficient GlobalPointer heads (ALGORITHMS.md §2.2–2.3) and their losses
 * (§2.4–2.5). Both return logits [B, heads, n, n] with padding spans and (tril) spans ending before
 * they start set to −∞ by the fused kx.globalPointerScores op; the decision threshold is 0.
 *
 * Parameter names: GlobalPointer `dense.weight/bias` ([heads·2d, D]); EfficientGlobalPointer
 * `p_dense.weight/bias` ([2d, D]) and `q_dense.weight/bias` ([2·heads, 2d]).
 */
import {
  ArgumentError,
  ShapeError,
  div,
  globalPointerScores,
  multilabelCrossEntropy,
  permute,
  reshape,
  slice,
  sparseMultilabelCrossEntropy,
  sum,
  type Tensor,
} from '@kexue/core-cuda';

import { lecunNormal, type Initializer } from '../nn/init.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { InitRng } from '../nn/random.js';
import { applyRope } from '../nn/rope.js';

export interface GlobalPointerOptions {
  /** Input size D (the encoder's hidden size). */
  hidden: number;
  /** Number of entity types. */
  heads: number;
  /** d; 64 in every reference setting. */
  headSize?: number;
  /** RoPE on q and k (positions 0 … n−1). Default true. */
  rope?: boolean;
  /** Mask spans with end < start. Default true. */
  tril?: boolean;
  /** Kernel initialiser; default lecunNormal (bert4keras since 2022-01). */
  init?: Initializer;
  /** Seed of the initialiser (default 0) or a generator. */
  rng?: InitRng | number;
}

/** What both heads share: their options, checked once, and the input check. */
abstract class PointerHead extends Module {
  readonly heads: number;
  readonly headSize: number;
  readonly useRope: boolean;
  readonly tril: boolean;
  protected readonly rng: InitRng;
  readonly #hidden: number;

  constructor(o: GlobalPointerOptions) {
    super();
    for (const k of ['hidden', 'heads'] as const) {
      if (!Number.isInteger(o[k]) || o[k] <= 0) throw new ArgumentError(`GlobalPointer: ${k} must be a positive integer, got ${String(o[k])}`);
    }
    const headSize = o.headSize ?? 64;
    if (!Number.isInteger(headSize) || headSize <= 0 || headSize % 2 !== 0) {
      throw new ArgumentError(`GlobalPointer: headSize must be a positive even integer (RoPE pairs), got ${String(headSize)}`);
    }
    this.heads = o.heads;
    this.headSize = headSize;
    this.useRope = o.rope ?? true;
    this.tril = o.tril ?? true;
    this.rng = o.rng instanceof InitRng ? o.rng : new InitRng(o.rng ?? 0);
    this.#hidden = o.hidden;
  }

  protected checkInput(x: Tensor, mask: Tensor | null | undefined): void {
    const hidden = this.#hidden;
    if (x.rank !== 3 || x.shape[2] !== hidden) throw new ShapeError(`GlobalPointer: x must be [B, n, ${hidden}], got ${x.describe()}`);
    if (mask && (mask.rank !== 2 || mask.shape[0] !== x.shape[0] || mask.shape[1] !== x.shape[1])) {
      throw new ShapeError(`GlobalPointer: mask must be uint8 [${x.shape[0]}, ${x.shape[1]}], got ${mask.describe()}`);
    }
  }
}

/** The original GlobalPointer: one dense layer D → heads·2d, per head [q(d) | k(d)]. */
export class GlobalPointer extends PointerHead {
  readonly dense: Linear;

  constructor(o: GlobalPointerOptions) {
    super(o);
    const { heads, headSize, rng } = this;
    this.dense = this.addModule('dense', new Linear(o.hidden, heads * 2 * headSize, { rng, init: o.init ?? lecunNormal() }));
  }

  /** x [B, n, D], mask uint8 [B, n] (1 = real token) → logits [B, heads, n, n]. */
  forward(x: Tensor, mask?: Tensor | null): Tensor {
    this.checkInput(x, mask);
    const [B, n] = x.shape as [number, number];
    const d = this.headSize;
    const y = permute(reshape(this.dense.forward(x), [B, n, this.heads, 2 * d]), [0, 2, 1, 3]);
    let q = slice(y, [0, 0, 0, 0], [B, this.heads, n, d]);
    let k = slice(y, [0, 0, 0, d], [B, this.heads, n, d]);
    if (this.useRope) {
      q = applyRope(q);
      k = applyRope(k);
    }
    return globalPointerScores(q, k, { mask: mask ?? null, tril: this.tril });
  }
}

/**
 * Efficient GlobalPointer: p = p_dense(x) [B, n, 2d] split interleaved (q = even channels, k = odd),
 * RoPE, shared scores ⟨q_i, k_j⟩/√d; q_dense(p)/2 gives per type an end term (even rows, column j)
 * and a start term (odd rows, row i).
 */
export class EfficientGlobalPointer extends PointerHead {
  readonly p_dense: Linear;
  readonly q_dense: Linear;

  constructor(o: GlobalPointerOptions) {
    super(o);
    const { headSize, rng } = this;
    const init = o.init ?? lecunNormal();
    this.p_dense = this.addModule('p_dense', new Linear(o.hidden, 2 * headSize, { rng, init }));
    this.q_dense = this.addModule('q_dense', new Linear(2 * headSize, 2 * o.heads, { rng, init }));
  }

  /** x [B, n, D], mask uint8 [B, n] (1 = real token) → logits [B, heads, n, n]. */
  forward(x: Tensor, mask?: Tensor | null): Tensor {
    this.checkInput(x, mask);
    const [B, n] = x.shape as [number, number];
    const d = this.headSize;
    const h = this.heads;
    const p = this.p_dense.forward(x);
    const qk = permute(reshape(p, [B, n, d, 2]), [0, 3, 1, 2]); // [B, 2, n, d]: q = even channels, k = odd
    let q = slice(qk, [0, 0, 0, 0], [B, 1, n, d]);
    let k = slice(qk, [0, 1, 0, 0], [B, 1, n, d]);
    if (this.useRope) {
      q = applyRope(q);
      k = applyRope(k);
    }
    // q_dense on the pre-RoPE features, halved; output channel 2α is type α's end term, 2α+1 its start term
    const terms = permute(reshape(div(this.q_dense.forward(p), 2), [B, n, h, 2]), [0, 3, 2, 1]); // [B, 2, h, n]
    const end = reshape(slice(terms, [0, 0, 0, 0], [B, 1, h, n]), [B, h, n]);
    const start = reshape(slice(terms, [0, 1, 0, 0], [B, 1, h, n]), [B, h, n]);
    return globalPointerScores(q, k, { mask: mask ?? null, tril: this.tril, start, end });
  }
}

/**
 * The GlobalPointer loss with dense labels (GP-REPO): scores and labels [B, heads, n, n] seen as
 * [B·heads, n·n] rows of the multilabel categorical cross-entropy, mean over B·heads.
 */
export function globalPointerLoss(scores: Tensor, labels: Tensor): Tensor {
  if (scores.rank !== 4) throw new ShapeError(`globalPointerLoss: scores must be [B, heads, n, n], got ${scores.describe()}`);
  const [B, H, n, m] = scores.shape as [number, number, number, number];
  return multilabelCrossEntropy(reshape(scores, [B * H, n * m]), reshape(labels, [B * H, n * m]));
}

/**
 * The sparse GlobalPointer loss (GPLinker): indices int32 [B, heads, P] of flattened spans i·n + j,
 * padded with 0 (span (0, 0) = [CLS], never an entity); the sparse multilabel CE with class 0 as
 * padding, summed over heads and averaged over the batch.
 */
export function sparseGlobalPointerLoss(scores: Tensor, indices: Tensor): Tensor {
  if (scores.rank !== 4) throw new ShapeError(`sparseGlobalPointerLoss: scores must be [B, heads, n, n], got ${scores.describe()}`);
  const [B, H, n, m] = scores.shape as [number, number, number, number];
  const perHead = sparseMultilabelCrossEntropy(reshape(scores, [B, H, n * m]), indices, { maskZero: true, reduction: 'none' });
  return div(sum(perHead), B);
}
