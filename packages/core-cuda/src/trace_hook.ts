/**
 * The hook through which kx.compile watches a function run (compile/recorder.ts): while a trace is
 * active, runKernel tells it of every op before and after it runs, and reading a tensor's value on
 * the host is refused. This module sits below kernel.ts and tensor.ts, which consult it, and knows
 * nothing of compile/ (which imports them).
 */
import { ArgumentError } from './errors.js';
import type { Attrs } from './tape.js';
import type { Tensor } from './tensor.js';

/** What a trace learns of each op. */
export interface OpObserver {
  /** Before the op runs (it may refuse it by throwing). */
  willRun(op: string, inputs: readonly (Tensor | null | undefined)[]): void;
  /** After the op ran, with its outputs. */
  didRun(op: string, inputs: readonly (Tensor | null | undefined)[], outputs: readonly Tensor[], attrs: Attrs): void;
  /** The next `count` ops' attributes are recomputed by `compute` at every replay (dynamicAttrs). */
  dynamicAttrs(count: number, compute: () => Attrs[]): void;
  /** `t` is also handed to `receive` by every replay (replayOutput). */
  replayOutput(t: Tensor, receive: (t: Tensor) => void): void;
  /** The program stays valid while `valid()` holds (guardTrace). */
  guard(valid: () => boolean): void;
}

let current: OpObserver | null = null;

/** The trace in progress, or null (the common case: one variable read per op). */
export function activeTrace(): OpObserver | null {
  return current;
}

/** Whether kx.compile is tracing a function now (code that cannot be replayed may refuse to run). */
export function tracing(): boolean {
  return current !== null;
}

/** @internal Starts (or, with null, ends) a trace. */
export function setActiveTrace(observer: OpObserver | null): void {
  current = observer;
}

/**
 * E_ARG when a trace is in progress: a compiled function's value cannot depend on data read on the
 * host, since replays do not run the JavaScript that would read it.
 */
export function refuseHostRead(what: string, t: Tensor): void {
  if (!current) return;
  throw new ArgumentError(
    `${what}: cannot read the value of ${t.describe()} while kx.compile traces a function (a replay would not read it again); ` +
      'make the value a static argument (a number passed to the compiled function) or move the read out of the compiled function',
  );
}

/**
 * For code whose ops take attributes that change from call to call (an optimizer's step count and
 * learning rate): while kx.compile traces, the attributes of the next `count` ops this code runs
 * are recomputed at every replay by `compute`, called once per replay before the program runs
 * (in the order the trace met them), which may advance host state (a step counter) and must
 * return `count` attribute sets for those ops in order; throwing from it fails that call and
 * skips the program. Outside a trace it does nothing (the code runs its ops with the attributes it
 * computed itself).
 */
export function dynamicAttrs(count: number, compute: () => Attrs[]): void {
  current?.dynamicAttrs(count, compute);
}

/**
 * For code that reads a tensor it made after the traced function returned (an optimizer's guard
 * flags, read at a later step): while kx.compile traces, `t` (made by an op of the traced function)
 * becomes an extra output of the program, and every replay hands that replay's tensor to `receive`
 * once the program has run (the receiver owns it: dispose or keep it). The traced call itself hands
 * nothing (the code has `t`). Outside a trace it does nothing.
 */
export function replayOutput(t: Tensor, receive: (t: Tensor) => void): void {
  current?.replayOutput(t, receive);
}

/**
 * For code whose traced ops read a tensor derived from another (a weight packed for the products):
 * while kx.compile traces, the program is replayed only while `valid()` returns true, checked before
 * each replay; once it returns false the function is traced again (as a new signature would be).
 * Outside a trace it does nothing.
 */
export function guardTrace(valid: () => boolean): void {
  current?.guard(valid);
}

/**
 * Runs `fn` outside any trace in progress: its ops run now and are not part of the program, so a
 * replay reads what they made as it is (a constant of the program) instead of running them again.
 * For work a replay must not repeat, such as packing a weight, paired with guardTrace for when the
 * result goes stale.
 */
export function untraced<T>(fn: () => T): T {
  const saved = current;
  current = null;
  try {
    return fn();
  } finally {
    current = saved;
  }
}
