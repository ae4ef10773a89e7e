/**
 * Reverse-mode autograd over the tape: valueAndGrad, grad, and checkGrad (finite differences).
 */
import { isFloating } from './dtype.js';
import { ArgumentError, DTypeError, ShapeError } from './errors.js';
import { fullLike, tensor, zeros } from './creation.js';
import { tidy } from './memory.js';
import { add } from './ops/elementwise.js';
import { reshape } from './ops/shape.js';
import { activeTape, gradientRule, setActiveTape, Tape } from './tape.js';
import { Tensor } from './tensor.js';

/** Parameters as a list or a record of named tensors; gradients come back in the same form. */
export type Params = Tensor[] | Record<string, Tensor>;
export type GradsOf<P extends Params> = P extends Tensor[] ? Tensor[] : { [K in keyof P]: Tensor };

function paramList(params: Params): Tensor[] {
  const list = Array.isArray(params) ? params : Object.values(params);
  for (const p of list) {
    if (!(p instanceof Tensor)) throw new ArgumentError('valueAndGrad: every parameter must be a Tensor');
    if (!isFloating(p.dtype)) throw new DTypeError(`valueAndGrad: parameters must be floating, got ${p.describe()}`);
  }
  return list;
}

function backward(tape: Tape, value: Tensor, params: Tensor[], onGradient?: (index: number, grad: Tensor) => void): Tensor[] {
  tape.recording = false;
  tape.seed = fullLike(value, tape.outputGradient);
  const grads = new Map<Tensor, Tensor>([[value, tape.seed]]);
  // for onGradient: the parameters whose first use is node n, whose gradients are complete once
  // node n's rule has run (no earlier node adds to them)
  const completeAt = new Map<number, number[]>();
  if (onGradient) {
    const index = new Map(params.map((p, i) => [p, i]));
    const firstUse = new Map<number, number>();
    tape.nodes.forEach((node, n) => {
      for (const input of node.inputs) {
        const i = input ? index.get(input) : undefined;
        if (i !== undefined && !firstUse.has(i)) firstUse.set(i, n);
      }
    });
    for (const [i, n] of firstUse) completeAt.set(n, [...(completeAt.get(n) ?? []), i]);
  }
  const announce = (n: number) => {
    for (const i of completeAt.get(n) ?? []) {
      const g = grads.get(params[i]!);
      if (g) onGradient!(i, g);
    }
  };
  for (let n = tape.nodes.length - 1; n >= 0; n--) {
    const node = tape.nodes[n]!;
    const dys = node.outputs.map((o) => grads.get(o) ?? null);
    if (dys.every((d) => d === null)) {
      announce(n);
      continue;
    }
    const rule = gradientRule(node.op);
    if (!rule) throw new ArgumentError(`op '${node.op}' has no gradient`);
    const dxs = rule(dys, node);
    node.inputs.forEach((input, i) => {
      const dx = dxs[i];
      if (!input || !dx || !tape.isTracked(input)) return;
      const prev = grads.get(input);
      grads.set(input, prev ? add(prev, dx) : dx);
    });
    announce(n);
  }
  // Gradient rules may pass one tensor on to several inputs (add gives dy to both): each parameter
  // gets its own handle (a view of the same storage), so disposing one leaves the others alive.
  const seen = new Set<Tensor>();
  return params.map((p, i) => {
    const g = grads.get(p);
    if (!g) {
      const zero = zeros(p.shape, { dtype: p.dtype, device: p.device });
      onGradient?.(i, zero);
      return zero;
    }
    if (seen.has(g)) return reshape(g, g.shape);
    seen.add(g);
    return g;
  });
}

/** Whether a gradient tape is active: true inside the function given to valueAndGrad or grad. */
export function isRecordingGradients(): boolean {
  return activeTape() !== null;
}

export interface ValueAndGradOptions {
  /**
   * The gradients are those of outputGradient × value (default 1); the value comes back unscaled.
   * A loss scaler passes its scale here rather than multiplying the loss, which lets ops that
   * compute their gradient in the forward (crossEntropy) do so for the scaled loss too.
   */
  outputGradient?: number;
  /**
   * Called during the backward pass as soon as parameter `index`'s gradient is complete (no op
   * still to be differentiated adds to it), while the rest of the pass is still to run, so that a
   * caller can start using it early (data-parallel training starts its all-reduce); parameters with
   * no gradient come last, with their zeros. The tensor is the one returned in `grads`, or shares
   * storage with it and with other gradients: it must be read, never written in place, and it is
   * disposed with the pass's other tensors unless kept (or returned).
   */
  onGradient?: (index: number, grad: Tensor) => void;
}

/**
 * Calls fn(params), which must return a scalar (one-element floating tensor), and returns that
 * value with the gradient of it with respect to every parameter (zeros where it does not depend on
 * one). Every other tensor made inside is disposed. Cannot be nested.
 */
export function valueAndGrad<P extends Params>(
  fn: (params: P) => Tensor,
  params: P,
  options: ValueAndGradOptions = {},
): { value: Tensor; grads: GradsOf<P> } {
  const list = paramList(params);
  const { outputGradient = 1 } = options;
  if (typeof outputGradient !== 'number' || !Number.isFinite(outputGradient)) {
    throw new ArgumentError(`valueAndGrad: outputGradient must be a finite number, got ${String(outputGradient)}`);
  }
  const tape = new Tape(list, outputGradient);
  let result: { value: Tensor; grads: Tensor[] } | undefined;
  setActiveTape(tape);
  try {
    result = tidy(() => {
      const value = fn(params);
      if (!(value instanceof Tensor)) throw new ArgumentError('valueAndGrad: fn must return a Tensor');
      if (value.size !== 1 || !isFloating(value.dtype)) {
        throw new ShapeError(`valueAndGrad: fn must return a one-element floating tensor, got ${value.describe()}`);
      }
      return { value, grads: backward(tape, value, list, options.onGradient) };
    });
  } finally {
    setActiveTape(null);
    tape.releaseDeferred(new Set(result ? [result.value, ...result.grads] : []));
  }
  const grads = Array.isArray(params)
    ? result.grads
    : Object.fromEntries(Object.keys(params).map((k, i) => [k, result!.grads[i]!]));
  return { value: result.value, grads: grads as GradsOf<P> };
}

/** The gradients of valueAndGrad, with the value disposed. */
export function grad<P extends Params>(fn: (params: P) => Tensor, params: P, options: ValueAndGradOptions = {}): GradsOf<P> {
  const { value, grads } = valueAndGrad(fn, params, options);
  value.dispose();
  return grads;
}

export interface CheckGradOptions {
  /** Finite-difference step. Default 1e-2 (float32 central differences). */
  eps?: number;
  /** Passes when |analytic − numeric| ≤ atol + rtol·|numeric|. Defaults 1e-3 and 1e-2. */
  atol?: number;
  rtol?: number;
  /** Elements checked per input, spread evenly over it. Default 64. */
  maxPoints?: number;
}

export interface CheckGradResult {
  ok: boolean;
  maxAbsError: number;
  maxRelError: number;
  /** Where the largest violation is: input index, element index, analytic and numeric values. */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

/**
 * Compares the gradients of fn(...inputs) (a scalar) with central finite differences, element by
 * element on up to maxPoints elements of each float32 input.
 */
export function checkGrad(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], options: CheckGradOptions = {}): CheckGradResult {
  const { eps = 1e-2, atol = 1e-3, rtol = 1e-2, maxPoints = 64 } = options;
  for (const x of inputs) {
    if (x.dtype !== 'float32') throw new DTypeError(`checkGrad: inputs must be float32, got ${x.describe()}`);
  }
  const analytic = grad((xs: Tensor[]) => fn(...xs), inputs).map((g) => {
    const data = g.toFloat32Array();
    g.dispose();
    return data;
  });
  const evalAt = (which: number, data: Float32Array): number =>
    tidy(() => {
      const args = inputs.map((x, i) => (i === which ? tensor(data, x.shape, { device: x.device }) : x));
      return fn(...args).item();
    });
  const result: CheckGradResult = { ok: true, maxAbsError: 0, maxRelError: 0, worst: null };
  let worstExcess = 0;
  inputs.forEach((x, which) => {
    const base = x.toFloat32Array();
    const points = Math.min(maxPoints, base.length);
    for (let p = 0; p < points; p++) {
      const index = Math.floor((p * base.length) / points);
      const data = base.slice();
      data[index] = base[index]! + eps;
      const up = evalAt(which, data);
      data[index] = base[index]! - eps;
      const down = evalAt(which, data);
      const numeric = (up - down) / (2 * eps);
      const a = analytic[which]![index]!;
      const abs = Math.abs(a - numeric);
      result.maxAbsError = Math.max(result.maxAbsError, abs);
      result.maxRelError = Math.max(result.maxRelError, abs / Math.max(Math.abs(numeric), Math.abs(a), 1e-12));
      const excess = abs - (atol + rtol * Math.abs(numeric));
      if (excess > 0 && excess >= worstExcess) {
        worstExcess = excess;
        result.ok = false;
        result.worst = { input: which, index, analytic: a, numeric };
      }
    }
  });
  return result;
}
