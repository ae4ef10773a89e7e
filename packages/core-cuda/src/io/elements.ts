/**
 * Element types found in checkpoint files and how each becomes one of kexue's dtypes. The file
 * formats name them differently (safetensors "I64", PyTorch "LongStorage"); both map to a
 * `FileDType` here, so that the conversion rules (and their range checks) exist once.
 *
 * - F32, F16, BF16, I32, U8: kept as is (bytes copied once, into the tensor).
 * - BOOL → uint8 (0/1).
 * - I64, U64, U32 → int32 when every value fits; otherwise E_FORMAT naming the tensor, the value
 *   and its index. I8, I16, U16 → int32 (always fits).
 * - F64 → float32 rounded to nearest; a finite value beyond float32's range is E_FORMAT (it would
 *   become ±Infinity); NaN and ±Infinity stay what they are.
 * - F8_E4M3 (e4m3fn) and F8_E5M2 → float16, exactly (every such value is a float16).
 *
 * Data is little-endian, as both formats write it.
 */
import type { DType, RawData } from '../dtype.js';
import { FormatError } from '../errors.js';

export type FileDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

interface FileDTypeInfo {
  /** Bytes per element in the file. */
  size: number;
  /** The kexue dtype it is read as. */
  dtype: DType;
}

export const FILE_DTYPES: Readonly<Record<FileDType, FileDTypeInfo>> = {
  F64: { size: 8, dtype: 'float32' },
  F32: { size: 4, dtype: 'float32' },
  F16: { size: 2, dtype: 'float16' },
  BF16: { size: 2, dtype: 'bfloat16' },
  F8_E4M3: { size: 1, dtype: 'float16' },
  F8_E5M2: { size: 1, dtype: 'float16' },
  I64: { size: 8, dtype: 'int32' },
  I32: { size: 4, dtype: 'int32' },
  I16: { size: 2, dtype: 'int32' },
  I8: { size: 1, dtype: 'int32' },
  U64: { size: 8, dtype: 'int32' },
  U32: { size: 4, dtype: 'int32' },
  U16: { size: 2, dtype: 'int32' },
  U8: { size: 1, dtype: 'uint8' },
  BOOL: { size: 1, dtype: 'uint8' },
};

export function isFileDType(name: unknown): name is FileDType {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(FILE_DTYPES, name);
}

/**
 * A view of `bytes` as `Ctor` elements when `bytes` is aligned for it, else an aligned copy.
 * The view shares memory with `bytes`: the tensor made from it copies once (native fromData).
 */
function aligned<T extends Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | Int16Array>(
  bytes: Uint8Array,
  Ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number },
): T {
  const n = bytes.byteLength / Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer, bytes.byteOffset, n);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, n);
}

let e4m3Table: Uint16Array | undefined;

/** float16 bits of every float8 e4m3fn byte (bias 7, no infinities, S.1111.111 is NaN). */
function e4m3ToHalf(): Uint16Array {
  if (e4m3Table) return e4m3Table;
  const table = new Uint16Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = (b & 0x80) << 8;
    const exp = (b >> 3) & 0xf;
    const man = b & 7;
    let bits: number;
    if (exp === 0xf && man === 7) bits = 0x7e00; // NaN
    else if (exp === 0) {
      if (man === 0) bits = 0;
      else {
        // subnormal man·2^-9: normalise into float16 (bias 15)
        let e = -6;
        let m = man;
        while ((m & 8) === 0) { m <<= 1; e--; }
        bits = ((e + 15) << 10) | ((m & 7) << 7);
      }
    } else bits = ((exp - 7 + 15) << 10) | (man << 7);
    table[b] = sign | bits;
  }
  e4m3Table = table;
  return table;
}

/**
 * Converts `count` little-endian elements of type `from` in `bytes` into the raw data of a kexue
 * tensor (dtype FILE_DTYPES[from].dtype). `what` names the tensor in error messages.
 */
export function decodeElements(bytes: Uint8Array, from: FileDType, what: string): RawData {
  const info = FILE_DTYPES[from];
  if (bytes.byteLength % info.size !== 0) throw new FormatError(`${what}: ${bytes.byteLength} bytes is not a whole number of ${from} elements`);
  const n = bytes.byteLength / info.size;
  switch (from) {
    case 'F32': return aligned(bytes, Float32Array);
    case 'F16':
    case 'BF16': return aligned(bytes, Uint16Array);
    case 'I32': return aligned(bytes, Int32Array);
    case 'U8':
    case 'BOOL': return bytes;
    case 'I8': return Int32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, n));
    case 'I16': return Int32Array.from(aligned(bytes, Int16Array));
    case 'U16': return Int32Array.from(aligned(bytes, Uint16Array));
    case 'U32': {
      const src = aligned(bytes, Int32Array);
      for (let i = 0; i < n; i++) if (src[i]! < 0) outOfRange(what, 'U32', (src[i]! >>> 0).toString(), i);
      return src;
    }
    case 'I64':
    case 'U64': {
      // Pairs of (low, high) words: the value fits int32 when the high word is the low word's sign
      // extension (I64), or zero with a non-negative low word (U64).
      const words = aligned(bytes, Int32Array);
      const out = new Int32Array(n);
      const signed = from === 'I64';
      for (let i = 0; i < n; i++) {
        const lo = words[2 * i]!;
        const hi = words[2 * i + 1]!;
        if (signed ? hi !== lo >> 31 : hi !== 0 || lo < 0) {
          const v = signed ? (BigInt(hi) << 32n) | BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
          outOfRange(what, from, v.toString(), i);
        }
        out[i] = lo;
      }
      return out;
    }
    case 'F64': {
      const src = aligned(bytes, Float64Array);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        const f = Math.fround(v);
        if (f === Infinity || f === -Infinity) {
          if (Number.isFinite(v)) throw new FormatError(`${what}: float64 value ${v} at index ${i} is beyond float32's range`);
        }
        out[i] = f;
      }
      return out;
    }
    case 'F8_E5M2': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes[i]! << 8; // e5m2 is the top byte of a float16
      return out;
    }
    case 'F8_E4M3': {
      const table = e4m3ToHalf();
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = table[bytes[i]!]!;
      return out;
    }
  }
}

function outOfRange(what: string, from: FileDType, value: string, index: number): never {
  throw new FormatError(`${what}: ${from} value ${value} at index ${index} does not fit int32 (kexue reads integers as int32)`);
}

/** The first element of a floating tensor's raw data that is NaN or ±Infinity. */
export interface NonFiniteElement {
  /** Its index in the flattened tensor. */
  index: number;
  /** NaN, Infinity or -Infinity. */
  value: number;
}

/**
 * The first NaN or ±Infinity in raw tensor data of a kexue dtype (float32 values, or float16 /
 * bfloat16 bits: all exponent bits set), or null; integer dtypes have none. One pass, no copy.
 */
export function firstNonFinite(data: RawData, dtype: DType): NonFiniteElement | null {
  if (dtype === 'float32') {
    const a = data as Float32Array;
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (v - v !== 0) return { index: i, value: v }; // NaN - NaN and ±Inf - ±Inf are NaN
    }
    return null;
  }
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const bits = data as Uint16Array;
    const exp = dtype === 'float16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!;
      if ((b & exp) === exp) return { index: i, value: (b & (0x7fff & ~exp)) !== 0 ? NaN : b & 0x8000 ? -Infinity : Infinity };
    }
    return null;
  }
  return null;
}
