/**
 * Entity-level evaluation (ALGORITHMS.md §2.7): exact match on sets of (start, end, type);
 * X = |pred ∩ gold|, Y = |pred|, Z = |gold| summed over the dataset; P = X/Y, R = X/Z,
 * F1 = 2X/(Y+Z), each exactly 0 when X is 0 (nothing predicted, nothing gold, or nothing right).
 * The reference code starts X, Y and Z at 1e-10 instead, which reported P = 1 when nothing was
 * predicted, R = 1 for a type with no gold entity and 8.8e-14 where 0 was meant; the counts here are
 * integers and the results exact. Also the training-time span F1 of GlobalPointer logits against
 * dense labels.
 */
import { ShapeError, type Tensor } from '@kexue/core-cuda';

/** Anything with a start, an end and a type (character offsets or token indices). */
export interface Span {
  start: number;
  end: number;
  type: string | number;
}

export interface PRF {
  precision: number;
  recall: number;
  f1: number;
  /** X: predicted entities that are gold. */
  correct: number;
  /** Y: entities predicted. */
  predicted: number;
  /** Z: gold entities. */
  gold: number;
}

/** A per-type result; `unknown` marks a type that is not among the model's labels (its gold entities can only be missed). */
export interface TypePRF extends PRF {
  unknown?: true;
}

class Counts {
  x = 0;
  y = 0;
  z = 0;
  result(): PRF {
    const { x, y, z } = this;
    // x > 0 implies y > 0 and z > 0: no division by zero, and no epsilon in the results
    return { precision: x === 0 ? 0 : x / y, recall: x === 0 ? 0 : x / z, f1: x === 0 ? 0 : (2 * x) / (y + z), correct: x, predicted: y, gold: z };
  }
}

const key = (s: Span) => `${s.start}\u0000${s.end}\u0000${s.type}`;

/** Accumulates entity-level P/R/F1 over a dataset, overall and per type. */
export class EntityF1 {
  #all = new Counts();
  #byType = new Map<string, Counts>();
  #labels: Set<string> | null;

  /**
   * `labels`: the model's entity types, when known. Each of them then has a per-type row even when
   * nothing of it was predicted or gold (all zeros), and a type outside them (gold in the evaluation
   * data but unknown to the model) is flagged `unknown`. Its gold entities count in the overall
   * recall's denominator either way: they were missed.
   */
  constructor(labels?: readonly (string | number)[]) {
    this.#labels = labels ? new Set(labels.map(String)) : null;
    for (const t of this.#labels ?? []) this.#counts(t);
  }

  #counts(type: string): Counts {
    let c = this.#byType.get(type);
    if (!c) this.#byType.set(type, (c = new Counts()));
    return c;
  }

  /** Adds one text's predicted and gold spans (duplicates within a list count once). */
  update(predicted: readonly Span[], gold: readonly Span[]): void {
    const P = new Map(predicted.map((s) => [key(s), s]));
    const G = new Map(gold.map((s) => [key(s), s]));
    for (const [k, s] of P) {
      const hit = G.has(k) ? 1 : 0;
      this.#all.x += hit;
      this.#all.y += 1;
      const c = this.#counts(String(s.type));
      c.x += hit;
      c.y += 1;
    }
    for (const s of G.values()) {
      this.#all.z += 1;
      this.#counts(String(s.type)).z += 1;
    }
  }

  /** Overall P/R/F1. */
  result(): PRF {
    return this.#all.result();
  }

  /** P/R/F1 per type, types sorted by name; a type the model does not know is flagged `unknown: true`. */
  perType(): Record<string, TypePRF> {
    return Object.fromEntries(
      [...this.#byType.keys()].sort().map((t): [string, TypePRF] => {
        const r: TypePRF = this.#byType.get(t)!.result();
        if (this.#labels && !this.#labels.has(t)) r.unknown = true;
        return [t, r];
      }),
    );
  }
}

/**
 * GP-REPO's training metric: ŷ = [logits > 0], F1 = 2·Σ(y·ŷ)/Σ(y + ŷ) over the whole batch tensor
 * (masked −∞ entries are never predicted). 0 when there are neither labels nor predictions.
 */
export function globalPointerF1(logits: Tensor, labels: Tensor): number {
  if (logits.size !== labels.size) throw new ShapeError(`globalPointerF1: logits ${logits.describe()} and labels ${labels.describe()} differ in size`);
  const s = logits.toFloat32Array();
  const y = labels.toFloat32Array();
  let inter = 0;
  let total = 0;
  for (let i = 0; i < s.length; i++) {
    const p = s[i]! > 0 ? 1 : 0;
    inter += y[i]! * p;
    total += y[i]! + p;
  }
  return total === 0 ? 0 : (2 * inter) / total;
}
