/**
 * The gradient tape: while `valueAndGrad` runs, every op whose inputs depend on a watched tensor is
 * recorded with the tensors its gradient rule needs. Gradient rules are registered by op name next
 * to their ops (ops/*.ts).
 */
import { ArgumentError } from './errors.js';
import type { Tensor } from './tensor.js';

export type Attrs = Record<string, number | boolean | string | number[] | undefined>;

/** What a gradient rule sees of the op it differentiates. */
export interface OpRecord {
  op: string;
  inputs: (Tensor | null)[];
  outputs: Tensor[];
  attrs: Attrs;
}

/**
 * Given the gradients of an op's outputs (null where an output received none), returns the
 * gradient of each input (null where an input is not differentiable).
 */
export type GradientRule = (dys: (Tensor | null)[], record: OpRecord) => (Tensor | null | undefined)[];

const rules = new Map<string, GradientRule>();

/** Registers the gradient rule of a native op. */
export function registerGradient(op: string, rule: GradientRule): void {
  rules.set(op, rule);
}

export function gradientRule(op: string): GradientRule | undefined {
  return rules.get(op);
}

export class Tape {
  readonly nodes: OpRecord[] = [];
  private readonly tracked = new Set<Tensor>();
  private readonly needed = new Set<Tensor>();
  private readonly deferred = new Set<Tensor>();
  recording = true;
  /**
   * The tensor the backward pass starts from, once it has begun: filled with outputGradient. A rule
   * handed this very tensor knows its value without reading it back from the device.
   */
  seed: Tensor | null = null;

  /**
   * `outputGradient`: the value the backward pass will start from, known before the forward runs,
   * so that an op may compute its input's gradient for it early (crossEntropy does).
   */
  constructor(
    watched: Tensor[],
    readonly outputGradient = 1,
  ) {
    for (const t of watched) this.tracked.add(t);
  }

  isTracked(t: Tensor): boolean {
    return this.tracked.has(t);
  }

  record(op: string, inputs: (Tensor | null)[], outputs: Tensor[], attrs: Attrs): void {
    if (!this.recording || !inputs.some((t) => t !== null && this.tracked.has(t))) return;
    this.nodes.push({ op, inputs, outputs, attrs });
    for (const t of inputs) if (t) this.needed.add(t);
    for (const t of outputs) {
      this.tracked.add(t);
      this.needed.add(t);
    }
  }

  /** Whether the tape still needs t for the backward pass. */
  holds(t: Tensor): boolean {
    return this.needed.has(t);
  }

  deferDispose(t: Tensor): void {
    this.deferred.add(t);
  }

  /** Frees what was disposed while the tape needed it, except the given survivors. */
  releaseDeferred(survivors: Set<Tensor>): void {
    for (const t of this.deferred) if (!survivors.has(t) && !t.isDisposed) t.release();
    this.deferred.clear();
  }
}

let current: Tape | null = null;

export function activeTape(): Tape | null {
  return current;
}

/** Whether ops run now belong to a backward pass (a gradient tape replaying, not recording). */
export function inBackward(): boolean {
  return current !== null && !current.recording;
}

export function setActiveTape(tape: Tape | null): void {
  if (tape && current) throw new ArgumentError('valueAndGrad/grad cannot be nested (higher-order gradients are not supported)');
  current = tape;
}
