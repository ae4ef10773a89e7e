/**
 * Entity-level evaluation (ALGORITHMS.md §2.7): exact match on sets of (start, end, type);
 * X = |pred ∩ gold|, Y = |pred|, Z = |gold| summed over the dataset, each starting at 1e-10 (as the
 * reference code, so nothing divides by zero: with no predictions and no gold entities at all,
 * P = R = F1 = 1); F1 = 2X/(Y+Z), P = X/Y, R = X/Z. Also the
 * training-time span F1 of GlobalPointer logits against dense labels.
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
  /** Counts without the 1e-10 initialisation. */
  correct: number;
  predicted: number;
  gold: number;
}

class Counts {
  x = 1e-10;
  y = 1e-10;
  z = 1e-10;
  result(): PRF {
    return {
      precision: this.x / this.y,
      recall: this.x / this.z,
      f1: (2 * this.x) / (this.y + this.z),
      correct: Math.round(this.x),
      predicted: Math.round(this.y),
      gold: Math.round(this.z),
    };
  }
}

const key = (s: Span) => `${s.start}\u0000${s.end}\u0000${s.type}`;

/** Accumulates entity-level P/R/F1 over a dataset, overall and per type. */
export class EntityF1 {
  #all = new Counts();
  #byType = new Map<string, Counts>();

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

  /** P/R/F1 per type, types sorted by name. */
  perType(): Record<string, PRF> {
    return Object.fromEntries([...this.#byType.keys()].sort().map((t) => [t, this.#byType.get(t)!.result()]));
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
