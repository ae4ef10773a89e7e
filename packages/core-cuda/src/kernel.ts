/** Runs native ops: checks liveness and devices, calls the addon, wraps outputs, feeds the tape. */
import { DeviceError, fromNativeError } from './errors.js';
import { native } from './native.js';
import { activeTape, type Attrs } from './tape.js';
import { Tensor } from './tensor.js';

/**
 * Runs native op `op` (named in native/core/ops.def) on the inputs (null for an absent optional
 * input) and returns its outputs. While a gradient tape is active the call is recorded.
 */
export function runKernel(op: string, inputs: (Tensor | null | undefined)[], attrs: Attrs = {}): Tensor[] {
  const ins = inputs.map((t) => t ?? null);
  let device: string | undefined;
  for (const t of ins) {
    if (!t) continue;
    if (device === undefined) device = t.device;
    else if (t.device !== device) throw new DeviceError(`${op}: inputs on ${device} and ${t.device}`);
  }
  const handles = ins.map((t) => (t ? t.handle : null));
  let raw;
  try {
    raw = native.run(op, handles, attrs);
  } catch (err) {
    throw fromNativeError(err);
  }
  const outs = raw.map((r) => new Tensor(r));
  activeTape()?.record(op, ins, outs, attrs);
  return outs;
}

/** runKernel for ops with one output. */
export function runKernel1(op: string, inputs: (Tensor | null | undefined)[], attrs: Attrs = {}): Tensor {
  return runKernel(op, inputs, attrs)[0]!;
}
