/**
 * Tensors across a thread boundary. A tensor's handle belongs to the thread that made it, so a
 * tensor crosses as its bytes: dtype, shape and the raw elements (Uint16Array bits for the halves,
 * so nothing is rounded), copied out with dataSync and made again with `tensor` on the other side,
 * bit for bit. Values may nest tensors in arrays and plain objects; everything else must be
 * something postMessage can clone.
 */
import { ArgumentError, Tensor, tensor, tidy, type DType, type RawData } from '@kexue/core-cuda';

/** A tensor in a message. */
export interface PackedTensor {
  readonly __kexueTensor: 1;
  dtype: DType;
  shape: number[];
  data: RawData;
}

function isPacked(v: unknown): v is PackedTensor {
  return typeof v === 'object' && v !== null && (v as { __kexueTensor?: unknown }).__kexueTensor === 1;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * A value with every tensor in it replaced by its bytes (a fresh copy, read from the tensor's
 * device), and the buffers of those copies, which postMessage may transfer instead of copying again.
 */
export function packValue(value: unknown, what = 'value'): { value: unknown; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const walk = (v: unknown, at: string): unknown => {
    if (v instanceof Tensor) {
      if (v.isDisposed) throw new ArgumentError(`${at} is a disposed tensor`);
      const data = v.dataSync();
      transfer.push(data.buffer as ArrayBuffer);
      return { __kexueTensor: 1, dtype: v.dtype, shape: [...v.shape], data } satisfies PackedTensor;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${at}[${i}]`));
    if (typeof v === 'object' && v !== null && isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, `${at}.${k}`);
      return out;
    }
    return v;
  };
  return { value: walk(value, what), transfer };
}

/**
 * The value packValue was given, with each tensor made again on `device`. The tensors are new:
 * the caller owns them (they join the innermost tidy scope, as any tensor made there).
 */
export function unpackValue(value: unknown, device: string): unknown {
  const walk = (v: unknown): unknown => {
    if (isPacked(v)) return tensor(v.data, v.shape, { dtype: v.dtype, device });
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null && isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value);
}

/**
 * Loads a copy of a module's parameters (as packValue packed them) into `module` in a worker, then
 * moves it to `device` in eval mode; on failure the module is disposed and the error rethrown.
 */
export function loadPackedWeights<M extends { loadStateDict(t: Record<string, Tensor>): unknown; to(device: string): { eval(): unknown }; dispose(): void }>(
  module: M,
  weights: unknown,
  device: string,
): M {
  try {
    tidy(() => void module.loadStateDict(unpackValue(weights, 'cpu') as Record<string, Tensor>));
    module.to(device).eval();
  } catch (err) {
    module.dispose();
    throw err;
  }
  return module;
}
