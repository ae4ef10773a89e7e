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
}

let current: OpObserver | null = null;

/** The trace in progress, or null (the common case: one variable read per op). */
export function activeTrace(): OpObserver | null {
  return current;
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
