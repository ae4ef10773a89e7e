/** Making tensors from JS data. */
import { assertDType, isFloating, rawArrayFor, type DType, type RawData } from './dtype.js';
import { resolveDevice } from './device.js';
import { ArgumentError, DTypeError, ShapeError, fromNativeError } from './errors.js';
import { native } from './native.js';
import { Tensor, type TensorLike } from './tensor.js';

export interface TensorOptions {
  /** Default: float32 for float data and numbers, the array's own type for Int32Array/Uint8Array. */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: string;
}

/** A copy of shape after checking that it is an array of non-negative integers (E_ARG otherwise). */
function checkShape(shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new ArgumentError(`shape must be an array of non-negative integers, got ${String(shape)}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new ArgumentError(`shape must be non-negative integers, got [${shape.map(String).join(', ')}]`);
    }
  }
  return [...shape] as number[];
}

/** options as given, or {} when left out; E_ARG for anything but an object. */
function checkOptions(options: unknown): TensorOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') {
    throw new ArgumentError(`options must be an object ({ dtype?, device? }), got ${options === null ? 'null' : typeof options}`);
  }
  return options as TensorOptions;
}

/**
 * Float data (numbers, Float32Array, Float64Array) becomes an integer dtype as `cast` converts
 * floats: truncated toward zero and saturated, NaN → 0 (a typed array's own conversion would wrap
 * 300 to 44 in uint8 and 2^31 to −2^31 in int32).
 */
function floatToInt(dtype: 'int32' | 'uint8'): (v: number) => number {
  const [lo, hi] = dtype === 'int32' ? [-2147483648, 2147483647] : [0, 255];
  return (v) => (v !== v ? 0 : v <= lo ? lo : v >= hi ? hi : Math.trunc(v));
}

function describeData(data: unknown): string {
  if (data === null) return 'null';
  if (ArrayBuffer.isView(data)) return data.constructor.name;
  return typeof data;
}

function defaultDType(data: unknown): DType {
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'uint8';
  return 'float32';
}

/**
 * A tensor from data: a typed array, an array of numbers, or a number (a scalar). Float32Array and
 * number[] data may be given any dtype (converted as `cast` converts: round-to-nearest-even to the
 * halves, truncated and saturated to int32/uint8, NaN → 0); a Uint16Array is taken as the raw bits
 * of a float16/bfloat16 tensor. The shape defaults to the data's length (a vector), or [] for a
 * number. A bad shape or options → E_ARG, data whose length does not match the shape → E_SHAPE.
 */
export function tensor(data: RawData | number[] | number, shape?: readonly number[], options?: TensorOptions): Tensor {
  // Typed arrays of numbers only: not a DataView, nor BigInt64Array/BigUint64Array (their elements
  // are bigints).
  const isTyped = ArrayBuffer.isView(data) && !(data instanceof DataView) && !(data instanceof BigInt64Array) && !(data instanceof BigUint64Array);
  if (!isTyped && !Array.isArray(data) && typeof data !== 'number') {
    throw new ArgumentError(`tensor data must be a typed array, an array of numbers or a number, got ${describeData(data)}`);
  }
  const opts = checkOptions(options);
  const dtype = opts.dtype === undefined ? defaultDType(data) : assertDType(opts.dtype);
  const device = resolveDevice(opts.device);
  const values = typeof data === 'number' ? [data] : data;
  const dims = shape === undefined ? (typeof data === 'number' ? [] : [values.length]) : checkShape(shape);
  const size = dims.reduce((a, b) => a * b, 1);
  if (values.length !== size) {
    throw new ShapeError(`data has ${values.length} elements but shape [${dims.join(', ')}] needs ${size}`);
  }
  const halfBits = values instanceof Uint16Array;
  if (halfBits && dtype !== 'float16' && dtype !== 'bfloat16') {
    throw new DTypeError(`a Uint16Array holds float16/bfloat16 bits; give dtype 'float16' or 'bfloat16', not '${dtype}'`);
  }
  // Floats for a half dtype are converted natively so that rounding matches PyTorch.
  const stagingDType: DType = isFloating(dtype) && !halfBits ? 'float32' : dtype;
  const Raw = rawArrayFor(stagingDType);
  if (Array.isArray(values)) {
    for (const v of values) if (typeof v !== 'number') throw new ArgumentError(`tensor data must hold numbers, got ${typeof v}`);
  }
  const floatData = !(values instanceof Int32Array || values instanceof Uint8Array || values instanceof Uint16Array);
  let raw: ArrayBufferView;
  if (values instanceof Raw) raw = values;
  else if (floatData && dtype === 'int32') raw = Int32Array.from(values as ArrayLike<number>, floatToInt(dtype));
  else if (floatData && dtype === 'uint8') raw = Uint8Array.from(values as ArrayLike<number>, floatToInt(dtype));
  else raw = Raw.from(values as ArrayLike<number>);
  try {
    if (stagingDType === dtype) return new Tensor(native.fromData(raw, dims, dtype, device));
    const staged = native.fromData(raw, dims, stagingDType, device);
    const [converted] = native.run('cast', [staged.handle], { dtype });
    native.dispose(staged.handle);
    return new Tensor(converted!);
  } catch (err) {
    throw fromNativeError(err);
  }
}

/** A one-element tensor of shape []. */
export function scalar(value: number, options?: TensorOptions): Tensor {
  return tensor(value, [], options);
}

/**
 * A tensor of the given shape filled with `value`, made where it lives: zeros by a memset, any other
 * value by repeating one element (broadcast_to), so no shape-sized buffer is built on the host.
 */
export function full(shape: readonly number[], value: number, options?: TensorOptions): Tensor {
  const dims = checkShape(shape);
  const opts = checkOptions(options);
  if (typeof value !== 'number') throw new ArgumentError(`full: value must be a number, got ${describeData(value)}`);
  if (Object.is(value, 0)) {
    const dtype = assertDType(opts.dtype ?? 'float32');
    try {
      return new Tensor(native.zeros(dims, dtype, resolveDevice(opts.device)));
    } catch (err) {
      throw fromNativeError(err);
    }
  }
  const one = tensor(value, [], opts);
  if (dims.length === 0) return one;
  try {
    return new Tensor(native.run('broadcast_to', [one.handle], { shape: dims })[0]!);
  } catch (err) {
    throw fromNativeError(err);
  } finally {
    one.dispose();
  }
}

export function zeros(shape: readonly number[], options?: TensorOptions): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options?: TensorOptions): Tensor {
  return full(shape, 1, options);
}

/** A tensor of `like`'s shape, dtype and device filled with `value`. */
export function fullLike(like: Tensor, value: number): Tensor {
  return full(like.shape, value, { dtype: like.dtype, device: like.device });
}

/** Numbers become scalars of `like`'s dtype and device; tensors pass through. */
export function asTensor(x: TensorLike, like: Tensor): Tensor {
  if (typeof x === 'number') return tensor(x, [], { dtype: like.dtype, device: like.device });
  if (!(x instanceof Tensor)) throw new ArgumentError(`expected a Tensor or a number, got ${typeof x}`);
  return x;
}
