/**
 * Writes a float32 matrix of sentence vectors for use elsewhere: `.npy` (NumPy's format, version
 * 1.0, written here) or `.safetensors` (one tensor, `vectors`).
 */
import path from 'node:path';

import { ArgumentError, DTypeError, io, type Tensor } from '@kexue/core-cuda';

/** The bytes of a version 1.0 .npy file holding a float32 array of `shape`, C order. */
export function npyBytes(data: Float32Array, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${dims}, }`;
  // magic (6) + version (2) + header length (2) + header: a multiple of 64, the header ending in '\n'
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const header = `${dict}${' '.repeat(total - 10 - dict.length - 1)}\n`;
  const out = new Uint8Array(total + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0); // \x93NUMPY, version 1.0
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
