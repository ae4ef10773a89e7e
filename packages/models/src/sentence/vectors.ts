/**
 * Matrices of vectors [N, d] in files, for use elsewhere: `.npy` (NumPy's format; version 1.0
 * written here, 1.0 to 3.0 read) or `.safetensors` (one tensor, `vectors`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ArgumentError, DTypeError, FormatError, ShapeError, io, ioError, tensor, tidy, type Tensor } from '@kexue/core-cuda';

/** The float element types readVectors takes from a .npy file (little-endian), by their descr. */
const NPY_FLOATS = { '<f2': 2, '<f4': 4, '<f8': 8 } as const;
const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** The bytes of a version 1.0 .npy file holding a float32 array of `shape`, C order. */
export function npyBytes(data: Float32Array, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${dims}, }`;
  // magic (6) + version (2) + header length (2) + header: a multiple of 64, the header ending in '\n'
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const header = `${dict}${' '.repeat(total - 10 - dict.length - 1)}\n`;
  const out = new Uint8Array(total + data.byteLength);
  out.set([...NPY_MAGIC, 1, 0], 0); // version 1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  // float32 little-endian: the typed array's own bytes on the little-endian hosts kexue runs on
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}

/**
 * Writes `matrix` (float32, any shape; sentence vectors are [N, d]) to `file` by its extension:
 * `.npy` or `.safetensors` (tensor `vectors`, with `metadata`). Atomic (a temporary file renamed).
 * E_ARG for another extension, E_DTYPE for a matrix not float32, E_IO when it cannot be written.
 */
export async function writeVectors(file: string, matrix: Tensor, metadata: Record<string, string> = {}): Promise<void> {
  if (matrix.dtype !== 'float32') throw new DTypeError(`writeVectors: the matrix must be float32, got ${matrix.describe()}`);
  const ext = path.extname(file).toLowerCase();
  if (ext === '.safetensors') return io.saveSafetensors(file, { vectors: matrix }, metadata);
  if (ext !== '.npy') throw new ArgumentError(`writeVectors: ${file} must end in .npy or .safetensors`);
  const bytes = npyBytes(matrix.toFloat32Array(), matrix.shape);
  await io.writeFileAtomic(file, async (write) => write(bytes));
}

/** The vectors [N, d] of a .npy file's bytes, as float32 on `device` (see readVectors). */
function parseNpy(bytes: Buffer, file: string, device: string): Tensor {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) throw new FormatError(`${file}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new FormatError(`${file}: .npy version ${major}.${bytes[7]} is not 1.0 to 3.0`);
  // version 1.0: a 2-byte header length; 2.0 and 3.0: 4 bytes
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw new FormatError(`${file}: truncated .npy header`);
  const end = start + (major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8));
  if (bytes.length < end) throw new FormatError(`${file}: truncated .npy header`);
  const header = bytes.toString(major === 3 ? 'utf8' : 'latin1', start, end);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new FormatError(`${file}: the .npy header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  if (!(descr in NPY_FLOATS)) throw new FormatError(`${file}: holds '${descr}', not little-endian floats (<f2, <f4, <f8)`);
  if (fortran === 'True') throw new FormatError(`${file}: is in Fortran order; save it in C order (np.ascontiguousarray)`);
  const shape = shapeText.split(',').map((d) => d.trim()).filter((d) => d !== '').map(Number);
  if (shape.length !== 2 || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new ShapeError(`${file}: vectors must be a matrix [N, d], got shape (${shapeText})`);
  const itemSize = NPY_FLOATS[descr as keyof typeof NPY_FLOATS];
  const size = shape[0]! * shape[1]!;
  if (bytes.length - end !== size * itemSize) throw new FormatError(`${file}: ${descr}[${shape.join(', ')}] needs ${size * itemSize} bytes of data, the file holds ${bytes.length - end}`);
  // a copy of the data, aligned for its typed array whatever the header's length
  const data = bytes.buffer.slice(bytes.byteOffset + end, bytes.byteOffset + bytes.length);
  if (itemSize === 2) return tidy(() => tensor(new Uint16Array(data), shape, { dtype: 'float16', device }).cast('float32'));
  return tensor(itemSize === 4 ? new Float32Array(data) : Float32Array.from(new Float64Array(data)), shape, { device });
}

/**
 * Reads a matrix of vectors [N, d] as float32 on `options.device` (default the CPU), by the file's
 * extension: `.npy` (NumPy's formats 1.0 to 3.0, C order, <f2, <f4 or <f8) or `.safetensors` (the
 * tensor `vectors`, or the file's only tensor; float16 and bfloat16 are widened). E_IO for an
 * unreadable file, E_FORMAT for a malformed one or another element type, E_SHAPE for an array
 * that is not a non-empty matrix, E_ARG for another extension.
 */
export function readVectors(file: string, options: { device?: string } = {}): Tensor {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.npy') {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw ioError(`cannot read vectors ${file}`, err);
    }
    return parseNpy(bytes, file, options.device ?? 'cpu');
  }
  if (ext !== '.safetensors') throw new ArgumentError(`readVectors: ${file} must end in .npy or .safetensors`);
  const { tensors } = io.readSafetensors(file, options);
  const names = Object.keys(tensors);
  const name = 'vectors' in tensors ? 'vectors' : names.length === 1 ? names[0]! : undefined;
  const chosen = name === undefined ? undefined : tensors[name]!;
  for (const t of Object.values(tensors)) if (t !== chosen) t.dispose();
  if (chosen === undefined) throw new FormatError(`${file}: holds ${names.length === 0 ? 'no tensors' : `tensors ${names.join(', ')}`}, none named 'vectors'`);
  if (chosen.rank !== 2 || chosen.size === 0) {
    const error = new ShapeError(`${file}: vectors must be a non-empty matrix [N, d], got ${chosen.describe()}`);
    chosen.dispose();
    throw error;
  }
  if (chosen.dtype === 'float32') return chosen;
  if (chosen.dtype !== 'float16' && chosen.dtype !== 'bfloat16') {
    chosen.dispose();
    throw new FormatError(`${file}: tensor '${name}' is ${chosen.dtype}, not floating`);
  }
  const widened = chosen.cast('float32');
  chosen.dispose();
  return widened;
}
