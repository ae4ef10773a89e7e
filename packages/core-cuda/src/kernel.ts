/** Runs native ops: checks liveness and devices, calls the addon, wraps outputs, feeds the tape. */
import { ArgumentError, DeviceError, fromNativeError } from './errors.js';
import { native } from './native.js';
import { activeTape, type Attrs } from './tape.js';
import { Tensor } from './tensor.js';

/**
 * Runs native op `op` (named in native/ops/ops.def) on the inputs (null for an absent optional
 * input) and returns its outputs. While a gradient tape is active the call is recorded.
 */
export function runKernel(op: string, inputs: (Tensor | null | undefined)[], attrs: Attrs = {}): Tensor[] {
  checkAttrs(op, attrs);
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

let declaredAttrs: Map<string, Set<string>> | null = null;

/** E_ARG for an attribute the op does not declare (the addon reads only the declared ones, by name). */
function checkAttrs(op: string, attrs: Attrs): void {
  declaredAttrs ??= new Map(native.buildInfo().ops.map((o) => [o.name, new Set(o.attrs)]));
  const declared = declaredAttrs.get(op);
  if (!declared) return; // an unknown op: the addon says so
  for (const name in attrs) {
    if (attrs[name] !== undefined && !declared.has(name)) throw new ArgumentError(`${op}: unknown attribute '${name}'`);
  }
}

/** runKernel for ops with one output. */
export function runKernel1(op: string, inputs: (Tensor | null | undefined)[], attrs: Attrs = {}): Tensor {
  return runKernel(op, inputs, attrs)[0]!;
}
