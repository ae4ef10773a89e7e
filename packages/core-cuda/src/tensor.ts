/**
 * The Tensor: a handle to native, contiguous, row-major storage with a shape, dtype and device.
 *
 * This module knows no ops: they import kernel.ts, which makes Tensors, so importing them here would
 * close a cycle. The methods that run ops (TensorOpMethods) are declared here and attached to the
 * prototype by tensor_methods.ts, which index.ts loads.
 */
import { type DType, type RawData } from './dtype.js';
import { DisposedError, ShapeError, fromNativeError } from './errors.js';
import { track, untrack, dispose } from './memory.js';
import { native, type NativeHandle, type NativeTensor } from './native.js';
import { resolveDevice } from './device.js';
import { refuseHostRead } from './trace_hook.js';

let nextId = 1;

/** @internal The id the next tensor made will have: every tensor made before has a smaller one. */
export function nextTensorId(): number {
  return nextId;
}

/** The Tensor methods that run ops, implemented in tensor_methods.ts. */
export interface TensorOpMethods {
  /** x converted to another dtype (see ops/cast). */
  cast(dtype: DType): Tensor;
  /** The same elements under another shape (see ops/shape). */
  reshape(shape: readonly number[]): Tensor;
}

// Declaration merging: the class's type has the op methods that tensor_methods.ts attaches.
export interface Tensor extends TensorOpMethods {}

export class Tensor {
  /** Unique per tensor object, in creation order. */
  readonly id: number;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** 'cpu' or 'cuda:N'. */
  readonly device: string;
  /** @internal Marks tensors for the memory module without an import cycle. */
  readonly __kexueTensor = true;
  /** @internal Set by `keep`: no tidy scope disposes this tensor. */
  kept = false;
  /**
   * @internal How many in-place updates (the optimizer ops of ops/optim.ts, the only ops that write
   * into an existing tensor) have changed this tensor's elements: what a packed copy checks.
   */
  version = 0;
  #handle: NativeHandle | null;

  /** @internal Tensors are made by ops and creation functions, not by users. */
  constructor(raw: NativeTensor) {
    this.id = nextId++;
    this.shape = Object.freeze(raw.shape); // the addon's wrapper made this array for this tensor alone
    this.dtype = raw.dtype as DType;
    this.device = raw.device;
    this.#handle = raw.handle;
    track(this);
  }

  /** Number of elements. */
  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** @internal The native handle; E_DISPOSED after dispose(). */
  get handle(): NativeHandle {
    if (this.#handle === null) throw new DisposedError(`${this.describe()} has been disposed`);
    return this.#handle;
  }

  /**
   * The raw elements as a typed array: Float32Array, Int32Array, Uint8Array, or Uint16Array bits for
   * halves. A CUDA tensor is copied back to the host once the work queued before on its device has
   * finished (this blocks; a failed kernel's error surfaces here).
   */
  dataSync(): RawData {
    refuseHostRead('dataSync', this);
    try {
      return native.toData(this.handle);
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  /** The raw elements (as dataSync), resolved once any device work has finished. */
  async data(): Promise<RawData> {
    refuseHostRead('data', this);
    return this.dataSync();
  }

  /** The elements converted to float32 (half types widened exactly; integers converted). */
  toFloat32Array(): Float32Array {
    refuseHostRead('toFloat32Array', this);
    if (this.dtype === 'float32') return this.dataSync() as Float32Array;
    try {
      const [f32] = native.run('cast', [this.handle], { dtype: 'float32' });
      const out = native.toData(f32!.handle) as Float32Array;
      native.dispose(f32!.handle);
      return out;
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  /** The single element of a one-element tensor, as a number. */
  item(): number {
    refuseHostRead('item', this);
    if (this.size !== 1) throw new ShapeError(`item() needs one element, ${this.describe()} has ${this.size}`);
    return this.dtype === 'int32' || this.dtype === 'uint8' ? this.dataSync()[0]! : this.toFloat32Array()[0]!;
  }

  /** A copy on another device ('cpu', 'cuda', 'cuda:N'); E_NO_CUDA where there is no such GPU. */
  to(device: string): Tensor {
    refuseHostRead('to', this);
    const target = resolveDevice(device);
    try {
      return new Tensor(native.toDevice(this.handle, target));
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  /** Frees the native memory now (see memory.dispose). */
  dispose(): void {
    dispose(this);
  }

  /** @internal Drops the native reference unconditionally. */
  release(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
    untrack(this);
  }

  describe(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device})`;
  }

  toString(): string {
    return this.describe();
  }
}

/** A tensor, or a number broadcast as a scalar of the other operand's dtype. */
export type TensorLike = Tensor | number;
