/**
 * safetensors files: an 8-byte little-endian header length N, N bytes of JSON naming each tensor's
 * dtype, shape and byte range (relative to the data that follows), then the raw little-endian data.
 *
 * Reading validates the header as the reference implementation (huggingface/safetensors) does:
 * a sane header length, UTF-8 JSON object, known dtypes, shapes of non-negative integers, byte
 * ranges whose sizes match the shapes, and ranges that tile the data exactly (sorted by offset,
 * each tensor starts where the previous ended, the last ends at the end of the file: no overlaps,
 * no gaps, no trailing bytes). Everything wrong is E_FORMAT with what is wrong; a missing or
 * unreadable file is E_IO. dtype conversions on reading are those of ./elements.ts (I64 → int32
 * with a range check, F64 → float32, BOOL → uint8, ...).
 *
 * Files are read tensor by tensor with positional reads into one reused buffer, and each tensor is
 * made from an aligned view of it (one copy, into the tensor). On request the same pass computes the
 * SHA-256 of the whole file (the header and the data, which the tensors tile exactly) and finds the
 * first NaN or ±Infinity of the floating tensors, for callers that verify what they load
 * (checkpoints). Writing is atomic (./atomic.ts).
 */
import { createHash, type Hash } from 'node:crypto';

import { resolveDevice } from '../device.js';
import { tensor } from '../creation.js';
import { bytesPerElement, type DType } from '../dtype.js';
import { ArgumentError, DisposedError, FormatError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { writeFileAtomic } from './atomic.js';
import { FILE_DTYPES, decodeElements, firstNonFinite, isFileDType, type FileDType, type NonFiniteElement } from './elements.js';
import { MemorySource, withFile, type ByteSource } from './source.js';

const TO_FILE: Record<DType, FileDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int32: 'I32', uint8: 'U8' };
/** The reference implementation's limit on the header's size. */
const MAX_HEADER = 100 * 1024 * 1024;
const METADATA_KEY = '__metadata__';

/** Options of the readers. */
export interface LoadOptions {
  /** Where the tensors are made: 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
}

/** Options of the safetensors readers: where the tensors go, and what to check in the same pass. */
export interface SafetensorsLoadOptions extends LoadOptions {
  /** Compute the SHA-256 of the file's bytes as they are read (no second read): `SafetensorsFile.sha256`. */
  sha256?: boolean;
  /**
   * Look for NaN and ±Infinity in the floating tensors as they are read: `SafetensorsFile.nonFinite`
   * names the first (in file order). Reported, not thrown: the caller decides (and may first want
   * to know from the checksum whether the file is corrupt).
   */
  findNonFinite?: boolean;
}

/** A file's tensors and its `__metadata__` strings. */
export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
  /** The SHA-256 of the whole file, lowercase hex (with `sha256: true`). */
  sha256?: string;
  /** The first floating tensor holding NaN or ±Infinity, and where (with `findNonFinite: true`; absent when there is none). */
  nonFinite?: NonFiniteElement & { tensor: string };
}

/** One tensor as the header describes it; `begin`/`end` are absolute byte offsets in the file. */
export interface SafetensorsEntry {
  name: string;
  dtype: FileDType;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header: metadata and the tensors in file order. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  entries: SafetensorsEntry[];
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

function parseMetadata(raw: unknown, where: string): Record<string, string> {
  if (raw === null || raw === undefined) return {};
  if (!isPlainObject(raw)) throw new FormatError(`${where}: ${METADATA_KEY} is not an object of strings`);
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new FormatError(`${where}: ${METADATA_KEY}['${k}'] is a ${typeof v}, not a string`);
  }
  return { ...(raw as Record<string, string>) };
}

function parseEntry(name: string, raw: unknown, where: string): Omit<SafetensorsEntry, 'begin' | 'end'> & { offsets: [number, number] } {
  const what = `${where}: tensor '${name}'`;
  if (!isPlainObject(raw)) throw new FormatError(`${what} is described by ${JSON.stringify(raw)}, not an object`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isFileDType(dtype)) {
    throw new FormatError(`${what} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(FILE_DTYPES).join(', ')})`);
  }
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new FormatError(`${what} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0) || offsets[1] < offsets[0]) {
    throw new FormatError(`${what} has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with 0 ≤ begin ≤ end`);
  }
  let bytes = FILE_DTYPES[dtype].size;
  for (const d of shape as number[]) {
    bytes *= d;
    if (!Number.isSafeInteger(bytes)) throw new FormatError(`${what} has shape ${JSON.stringify(shape)} whose size overflows`);
  }
  if (offsets[1] - offsets[0] !== bytes) {
    throw new FormatError(`${what}: ${dtype}${JSON.stringify(shape)} needs ${bytes} bytes but data_offsets [${offsets[0]}, ${offsets[1]}) hold ${offsets[1] - offsets[0]}`);
  }
  return { name, dtype, shape: shape as number[], offsets: offsets as [number, number] };
}

/** Reads and validates the header of a safetensors source (see the module comment). */
export function parseSafetensorsHeader(source: ByteSource): SafetensorsHeader {
  const where = source.name;
  if (source.size < 8) throw new FormatError(`${where}: truncated: ${source.size} bytes, too short for a safetensors header`);
  const lenBytes = source.read(0, 8, 'the header length');
  const headerLen = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER)) throw new FormatError(`${where}: header length ${headerLen} exceeds the ${MAX_HEADER}-byte limit (not a safetensors file, or corrupt)`);
  const n = Number(headerLen);
  if (n < 2) throw new FormatError(`${where}: header length ${n} is too small for a JSON object`);
  if (8 + n > source.size) throw new FormatError(`${where}: truncated: the header needs ${8 + n} bytes but the file has ${source.size}`);
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(source.read(8, n, 'the header'));
    if (!text.startsWith('{')) throw new Error(`it starts with ${JSON.stringify(text.slice(0, 8))}, not '{'`);
    header = JSON.parse(text);
  } catch (err) {
    throw new FormatError(`${where}: the header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(header)) throw new FormatError(`${where}: the header is not a JSON object`);
  const metadata = parseMetadata(header[METADATA_KEY], where);
  const parsed = Object.entries(header)
    .filter(([name]) => name !== METADATA_KEY)
    .map(([name, raw]) => parseEntry(name, raw, where));
  // The data must be tiled exactly by the tensors, in offset order (as the reference requires).
  const sorted = [...parsed].sort((a, b) => a.offsets[0] - b.offsets[0] || a.offsets[1] - b.offsets[1]);
  const dataStart = 8 + n;
  const dataLen = source.size - dataStart;
  let at = 0;
  let prev: string | undefined;
  for (const e of sorted) {
    const [begin, end] = e.offsets;
    if (begin < at) throw new FormatError(`${where}: tensors '${prev}' and '${e.name}' overlap (bytes [${begin}, ${at}) of the data)`);
    if (begin > at) throw new FormatError(`${where}: data bytes [${at}, ${begin}) before tensor '${e.name}' belong to no tensor`);
    if (end > dataLen) throw new FormatError(`${where}: truncated: tensor '${e.name}' needs data bytes [${begin}, ${end}) but the data has ${dataLen}`);
    at = end;
    prev = e.name;
  }
  if (at !== dataLen) throw new FormatError(`${where}: ${dataLen - at} bytes after the last tensor belong to no tensor`);
  return {
    metadata,
    entries: sorted.map(({ name, dtype, shape, offsets }) => ({ name, dtype, shape, begin: dataStart + offsets[0], end: dataStart + offsets[1] })),
  };
}

/**
 * Builds the tensors of a validated header (and, as asked, the file's SHA-256 and its first
 * non-finite float in the same pass); on any failure the tensors made so far are freed.
 */
function readTensors(source: ByteSource, header: SafetensorsHeader, options: SafetensorsLoadOptions): SafetensorsFile {
  const device = resolveDevice(options.device);
  const made = new Map<string, Tensor>();
  let hash: Hash | undefined;
  let nonFinite: SafetensorsFile['nonFinite'];
  try {
    if (options.sha256) {
      // the header, then the data in file order: the entries tile it exactly, so this is every byte
      hash = createHash('sha256');
      hash.update(source.read(0, header.entries[0]?.begin ?? source.size, 'the header', true));
    }
    for (const e of header.entries) {
      const what = `${source.name}: tensor '${e.name}'`;
      const bytes = source.read(e.begin, e.end - e.begin, `tensor '${e.name}'`, true);
      hash?.update(bytes);
      const dtype = FILE_DTYPES[e.dtype].dtype;
      const data = decodeElements(bytes, e.dtype, what);
      if (options.findNonFinite && !nonFinite) {
        const bad = firstNonFinite(data, dtype);
        if (bad) nonFinite = { tensor: e.name, ...bad };
      }
      made.set(e.name, tensor(data, e.shape, { dtype, device }));
    }
  } catch (err) {
    for (const t of made.values()) t.dispose();
    throw err;
  }
  // Names sorted, whatever the order of the header or of the data.
  const tensors: Record<string, Tensor> = {};
  for (const name of header.entries.map((e) => e.name).sort()) tensors[name] = made.get(name)!;
  return {
    tensors,
    metadata: header.metadata,
    ...(hash ? { sha256: hash.digest('hex') } : {}),
    ...(nonFinite ? { nonFinite } : {}),
  };
}

/** The validated header of a .safetensors file (metadata, names, dtypes, shapes), without reading data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  return withFile(file, parseSafetensorsHeader);
}

/**
 * Reads a .safetensors file: its tensors (CPU unless `device` says otherwise) and its metadata;
 * with `sha256` / `findNonFinite`, the file's digest and its first non-finite float, from the same
 * read.
 */
export function readSafetensors(file: string, options: SafetensorsLoadOptions = {}): SafetensorsFile {
  resolveDevice(options.device); // a bad device is E_ARG before the file is opened
  return withFile(file, (source) => readTensors(source, parseSafetensorsHeader(source), options));
}

/** Reads a .safetensors file's tensors (CPU unless `device` says otherwise); see readSafetensors for the metadata. */
export function loadSafetensors(file: string, options: LoadOptions = {}): Record<string, Tensor> {
  return readSafetensors(file, options).tensors;
}

/** Parses safetensors bytes already in memory (same validation and options as the file readers). */
export function parseSafetensors(bytes: Uint8Array, options: SafetensorsLoadOptions & { name?: string } = {}): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError('parseSafetensors: bytes must be a Uint8Array');
  resolveDevice(options.device);
  const source = new MemorySource(bytes, options.name ?? 'safetensors data');
  return readTensors(source, parseSafetensorsHeader(source), options);
}

interface Layout {
  head: Uint8Array;
  names: string[];
  dataBytes: number;
}

/** Validates the arguments of a save and lays out the header (tensor names sorted, data 8-byte aligned). */
function layout(tensors: Record<string, Tensor>, metadata: Record<string, string>): Layout {
  if (!isPlainObject(tensors)) throw new ArgumentError('saveSafetensors: tensors must be an object of Tensors');
  if (!isPlainObject(metadata)) throw new ArgumentError('saveSafetensors: metadata must be an object of strings');
  const header: Record<string, unknown> = {};
  const meta = Object.entries(metadata);
  for (const [k, v] of meta) {
    if (typeof v !== 'string') throw new ArgumentError(`saveSafetensors: metadata '${k}' is a ${typeof v}, not a string`);
  }
  if (meta.length > 0) header[METADATA_KEY] = metadata;
  const names = Object.keys(tensors).sort();
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (!(t instanceof Tensor)) throw new ArgumentError(`saveSafetensors: '${name}' is not a Tensor`);
    if (name === METADATA_KEY) throw new ArgumentError(`saveSafetensors: '${METADATA_KEY}' is reserved for metadata`);
    if (t.isDisposed) throw new DisposedError(`saveSafetensors: '${name}' has been disposed`);
    const bytes = t.size * bytesPerElement(t.dtype);
    header[name] = { dtype: TO_FILE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json);
  json += ' '.repeat((8 - ((8 + len) % 8)) % 8); // data starts 8-byte aligned
  const body = Buffer.from(json, 'utf-8');
  const head = new Uint8Array(8 + body.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(body.length), true);
  head.set(body, 8);
  return { head, names, dataBytes: offset };
}

function tensorBytes(t: Tensor): Uint8Array {
  const raw = t.dataSync();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** Serialises tensors (and string metadata) to safetensors bytes, names in sorted order. */
export function serializeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const { head, names, dataBytes } = layout(tensors, metadata);
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head);
  let at = head.length;
  for (const name of names) {
    const chunk = tensorBytes(tensors[name]!);
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Writes a .safetensors file atomically (temporary file, fsync, rename, fsync of the directory),
 * one tensor at a time (no copy of the whole file in memory). Bad arguments are E_ARG before any
 * file is touched; I/O failures are E_IO and leave the previous file in place.
 */
export async function saveSafetensors(file: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  if (typeof file !== 'string' || file === '') throw new ArgumentError(`saveSafetensors: the path must be a non-empty string`);
  const { head, names } = layout(tensors, metadata);
  await writeFileAtomic(file, async (write) => {
    await write(head);
    for (const name of names) await write(tensorBytes(tensors[name]!));
  });
}
