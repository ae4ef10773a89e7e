/**
 * Deterministic memory: every tensor belongs to the innermost `tidy` scope open when it was made;
 * closing the scope disposes what it made, except what the function returned or `keep` marked.
 * Native memory is freed at once on dispose; a FinalizationRegistry frees tensors that no scope
 * owns and that were dropped without dispose (the safety net, not the plan).
 *
 * V8 is told (AdjustExternalMemory) only about the tensors no tidy scope will free: those made
 * outside any scope, returned from the outermost one, or kept. Those are the ones that can be
 * dropped and leak, so V8 must weigh them when it decides to collect. The tensors a scope owns are
 * freed by the scope; reporting them too made V8 start a full collection several times per
 * training step as activations came and went (a third of a RoFormer step's time, measured).
 */
import { bytesPerElement } from './dtype.js';
import { ArgumentError } from './errors.js';
import { native, type NativeHandle } from './native.js';
import type { Tensor } from './tensor.js';
import { activeTape } from './tape.js';

let liveTensors = 0;
const scopes: Set<Tensor>[] = [];

/**
 * What the safety net needs of a tensor no scope will free: its handle (freed when the tensor is
 * collected undisposed) and the bytes reported to V8 for it. Tensors a scope owns are never
 * registered: the scope holds them, so they cannot be collected first, and registering every
 * intermediate (a FinalizationRegistry cell each) made every op slower and every collection longer.
 */
interface Unowned {
  handle: NativeHandle;
  bytes: number;
}
const unowned = new WeakMap<Tensor, Unowned>();

const finalizer = new FinalizationRegistry<Unowned>((u) => {
  liveTensors -= 1;
  native.dispose(u.handle);
  if (u.bytes > 0) native.adjustExternalMemory(-u.bytes);
});

/** Once t is no scope's to free: reports its bytes to V8 and puts it under the safety net. */
function report(t: Tensor): void {
  if (unowned.has(t) || t.isDisposed) return;
  const u: Unowned = { handle: t.handle, bytes: t.size * bytesPerElement(t.dtype) };
  unowned.set(t, u);
  finalizer.register(t, u, t);
  if (u.bytes > 0) native.adjustExternalMemory(u.bytes);
}

/** @internal Called by the Tensor constructor. */
export function track(t: Tensor): void {
  liveTensors += 1;
  const scope = scopes[scopes.length - 1];
  if (scope) scope.add(t);
  else report(t);
}

/** @internal Called once a tensor's native memory is released. */
export function untrack(t: Tensor): void {
  liveTensors -= 1;
  for (const s of scopes) s.delete(t);
  const u = unowned.get(t);
  if (u) {
    finalizer.unregister(t);
    unowned.delete(t);
    if (u.bytes > 0) native.adjustExternalMemory(-u.bytes);
  }
}

/** Anything that may hold tensors: a tensor, or arrays and plain objects of them. */
export type TensorContainer = Tensor | null | undefined | void | number | string | boolean | TensorContainer[] | { [key: string]: TensorContainer };

function collect(x: unknown, out: Set<Tensor>, depth = 0): void {
  if (x === null || typeof x !== 'object' || depth > 8) return;
  if (isTensor(x)) {
    out.add(x);
  } else if (Array.isArray(x)) {
    for (const v of x) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(x) === Object.prototype) {
    for (const v of Object.values(x)) collect(v, out, depth + 1);
  }
}

function isTensor(x: object): x is Tensor {
  return (x as { __kexueTensor?: boolean }).__kexueTensor === true;
}

/**
 * Runs fn and disposes every tensor it created, except those in its result (a tensor, or arrays or
 * plain objects of tensors) and those passed to `keep`. Returned tensors join the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) if (!t.kept) disposeTensor(t);
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new TypeError('tidy() takes a synchronous function; await inside it would free tensors too early');
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const outer = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) {
      if (outer) outer.add(t);
      else report(t);
    } else if (!t.kept) {
      disposeTensor(t);
    }
  }
  return result;
}

/** Exempts a tensor from the tidy scopes that hold it; it lives until disposed. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  for (const s of scopes) s.delete(t);
  report(t);
  return t;
}

/**
 * Frees the native memory of every tensor in x now. A tensor that an active gradient tape still
 * needs is freed when the tape finishes instead.
 */
export function dispose(x: TensorContainer): void {
  if (x !== null && typeof x === 'object' && isTensor(x)) return disposeTensor(x);
  const found = new Set<Tensor>();
  collect(x, found);
  for (const t of found) disposeTensor(t);
}

/** dispose of one tensor: freed now, or when the active tape no longer needs it. */
function disposeTensor(t: Tensor): void {
  if (t.isDisposed) return;
  const tape = activeTape();
  if (tape && tape.holds(t)) tape.deferDispose(t);
  else t.release();
}

/** Live tensors and native bytes. */
export interface MemoryInfo {
  /** Tensor objects not yet disposed (views count once each). */
  tensors: number;
  /** Native allocations alive. */
  storages: number;
  /** Bytes of native memory alive, host and device. */
  bytes: number;
  /** The most bytes alive at once since start. */
  peakBytes: number;
  /** Of `bytes`, the part on CUDA devices. */
  cudaBytes: number;
  /**
   * Freed host blocks kept for reuse by the caching allocator (not in `bytes`): reusing them avoids
   * first-touch page faults. Bounded by KEXUE_HOST_CACHE_MB (default min(4 GiB, RAM / 4)).
   */
  hostCachedBytes: number;
  /** The CUDA caching allocator (all zero where CUDA is absent or unused). */
  cuda: CudaMemoryInfo;
  /**
   * The external memory V8 weighs when it decides to collect garbage: the tensors no tidy scope
   * will free (made outside every scope, returned from the outermost one, or kept), plus anything
   * else in the process that reports to V8.
   */
  v8ExternalBytes: number;
}

/**
 * The CUDA caching allocator's counters, summed over devices. Device blocks are requests rounded up
 * to a size class (a quarter of their power of two, at least 512 bytes); a freed block is kept and
 * handed to the next request of its class, so a training loop calls cudaMalloc only in its first
 * step: after that `mallocCalls` stays put while `cacheHits` grows.
 */
export interface CudaMemoryInfo {
  /** Bytes in blocks held by live tensors (at least their `cudaBytes`, by the rounding). */
  allocated: number;
  /** Bytes in freed blocks kept for reuse (not in `allocated`); `cuda.releaseCache()` frees them. */
  cached: number;
  /** The most `allocated` has been since start. */
  peak: number;
  /** cudaMalloc calls made since start. */
  mallocCalls: number;
  /** Allocations served from the cache. */
  cacheHits: number;
}

export function memory(): MemoryInfo {
  const s = native.memoryStats();
  return {
    tensors: liveTensors,
    storages: s.storages,
    bytes: s.bytes,
    peakBytes: s.peakBytes,
    cudaBytes: s.cudaBytes,
    hostCachedBytes: s.hostCachedBytes,
    cuda: { ...s.cuda },
    v8ExternalBytes: native.adjustExternalMemory(0),
  };
}

/**
 * Returns the host cache's free blocks to the system (freed tensors' memory is kept for reuse,
 * since first-touching fresh pages costs more than most kernels). Returns the bytes released.
 */
export function releaseHostCache(): number {
  return native.releaseHostCache();
}

/**
 * Caps the bytes the host cache may hold (default KEXUE_HOST_CACHE_MB or min(4 GiB, RAM / 4));
 * 0 turns caching off. Trims the cache at once; returns the limit now in force.
 */
export function setHostCacheLimit(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new ArgumentError(`host cache limit must be a whole number of bytes >= 0, got ${bytes}`);
  return native.setHostCacheLimit(bytes);
}
