/** Runs native ops: checks liveness and devices, calls the addon, wraps outputs, feeds the tape and any trace. */
import { DeviceError, fromNativeError } from './errors.js';
import { native, type NativeHandle } from './native.js';
import { activeTape, type Attrs } from './tape.js';
import { Tensor } from './tensor.js';
import { activeTrace } from './trace_hook.js';

/**
 * Runs native op `op` (named in native/core/ops.def) on the inputs (null for an absent optional
 * input) and returns its outputs. While a gradient tape is active the call is recorded, and while
 * kx.compile traces a function, so is it there (trace_hook.ts).
 */
export function runKernel(op: string, inputs: (Tensor | null | undefined)[], attrs: Attrs = {}): Tensor[] {
  const trace = activeTrace();
  trace?.willRun(op, inputs);
  // One pass over the inputs (this runs for every op: its cost is the floor of per-op dispatch).
  const handles = new Array<NativeHandle | null>(inputs.length);
  let device: string | undefined;
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i];
    if (!t) {
      handles[i] = null;
      continue;
    }
    if (device === undefined) device = t.device;
    else if (t.device !== device) throw new DeviceError(`${op}: inputs on ${device} and ${t.device}`);
    handles[i] = t.handle;
  }
  let raw;
  try {
    raw = native.run(op, handles, attrs);
  } catch (err) {
    throw fromNativeError(err);
  }
  const outs = new Array<Tensor>(raw.length);
  for (let i = 0; i < raw.length; i++) outs[i] = new Tensor(raw[i]!);
  activeTape()?.record(op, inputs.map((t) => t ?? null), outs, attrs);
  trace?.didRun(op, inputs, outs, attrs);
  return outs;
}

/** runKernel for ops with one output. */
export function runKernel1(op: string, inputs: (Tensor | null | undefined)[], attrs: Attrs = {}): Tensor {
  return runKernel(op, inputs, attrs)[0]!;
}
