/**
 * safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
 * dtype, shape and byte range, then the raw little-endian data. Saving is atomic (a temporary file
 * renamed over the target).
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';

import { tensor } from '../creation.js';
import { bytesPerElement, rawArrayFor, type DType } from '../dtype.js';
import { ArgumentError, FormatError, KexueIOError } from '../errors.js';
import { Tensor } from '../tensor.js';

const TO_FILE: Record<DType, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int32: 'I32', uint8: 'U8' };
const FROM_FILE: Record<string, DType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', I32: 'int32', U8: 'uint8', BOOL: 'uint8' };
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Parses safetensors bytes into CPU tensors; E_FORMAT on anything malformed or truncated. */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  if (bytes.length < 8) throw new FormatError(`${source}: too short for a safetensors header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER || 8 + headerLen > bytes.length) {
    throw new FormatError(`${source}: header length ${headerLen} does not fit a ${bytes.length}-byte file`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    throw new FormatError(`${source}: header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new FormatError(`${source}: header is not an object`);
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const out: SafetensorsFile = { tensors: {}, metadata: {} };
  try {
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        out.metadata = raw as Record<string, string>;
        continue;
      }
      const e = raw as HeaderEntry;
      const dtype = FROM_FILE[e?.dtype];
      if (!dtype) throw new FormatError(`${source}: tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) {
        throw new FormatError(`${source}: tensor '${name}' has a bad shape`);
      }
      const [begin, end] = e.data_offsets ?? [];
      const size = e.shape.reduce((a, b) => a * b, 1);
      if (!Number.isInteger(begin) || !Number.isInteger(end) || begin! < 0 || end! > dataLen || end! - begin! !== size * bytesPerElement(dtype)) {
        throw new FormatError(`${source}: tensor '${name}' has byte range [${begin}, ${end}) that does not fit its shape or the file`);
      }
      const Raw = rawArrayFor(dtype);
      const copy = new Uint8Array(end! - begin!); // aligned for the typed array, and never a view of a pooled Buffer
      copy.set(bytes.subarray(dataStart + begin!, dataStart + end!));
      out.tensors[name] = tensor(new Raw(copy.buffer, 0, size), e.shape, { dtype });
    }
  } catch (err) {
    for (const t of Object.values(out.tensors)) t.dispose();
    throw err;
  }
  return out;
}

/** Reads a .safetensors file into CPU tensors. */
export function loadSafetensors(file: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new KexueIOError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseSafetensors(bytes, file);
}

/** Serialises tensors (and string metadata) to safetensors bytes, names in sorted order. */
export function serializeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (!(t instanceof Tensor)) throw new ArgumentError(`saveSafetensors: '${name}' is not a Tensor`);
    const raw = t.dataSync();
    const chunk = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    header[name] = { dtype: TO_FILE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + chunk.length] };
    chunks.push(chunk);
    offset += chunk.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // data starts 8-byte aligned
  const head = Buffer.from(json, 'utf-8');
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Writes a .safetensors file atomically: a temporary file beside it, fsynced, renamed over it. */
export async function saveSafetensors(file: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw new KexueIOError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
