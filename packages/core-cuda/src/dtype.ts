/** Element types and the typed arrays that carry them across the JS boundary. */
import { DTypeError } from './errors.js';

export type DType = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'uint8';

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32', 'uint8'];

/** Typed array of a dtype's raw elements: half types travel as their Uint16 bits. */
export type DataFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : D extends 'uint8'
      ? Uint8Array
      : Uint16Array;

export type RawData = Float32Array | Uint16Array | Int32Array | Uint8Array;

export function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16';
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'float32' || dtype === 'int32' ? 4 : dtype === 'uint8' ? 1 : 2;
}

export function assertDType(value: unknown): DType {
  if (typeof value === 'string' && (DTYPES as readonly string[]).includes(value)) return value as DType;
  throw new DTypeError(`unknown dtype ${JSON.stringify(value)} (expected one of ${DTYPES.join(', ')})`);
}

/** The typed array constructor that holds a dtype's raw elements. */
export function rawArrayFor(dtype: DType): Float32ArrayConstructor | Uint16ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor {
  switch (dtype) {
    case 'float32': return Float32Array;
    case 'int32': return Int32Array;
    case 'uint8': return Uint8Array;
    default: return Uint16Array;
  }
}
