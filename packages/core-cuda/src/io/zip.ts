/**
 * A zip archive reader (PKWARE APPNOTE 6.3): the end-of-central-directory record (zip64 too), the
 * central directory, local headers, stored and deflated entries (node:zlib), and CRC-32 checks.
 * Enough for PyTorch checkpoints (stored entries, data aligned to 64 bytes, zip64 when large) and
 * for ordinary zip files; not for encryption or multi-disk archives (E_FORMAT saying so). Every
 * inconsistency (bad signature, a range outside the file, a size or checksum mismatch) is E_FORMAT.
 */
import zlib from 'node:zlib';

import { FormatError } from '../errors.js';
import type { ByteSource } from './source.js';

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** One file in the archive, from its central directory record. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

let crcTable: Int32Array | undefined;

/** CRC-32 (IEEE): zlib's when this Node has it (≥ 20.15), else a table-driven one. */
export function crc32(bytes: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;
  if (native) return native(bytes) >>> 0;
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function u64(v: DataView, at: number, what: string, where: string): number {
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${where}: ${what} ${x} is out of range`);
  return Number(x);
}

/** The entries of a zip archive and their contents. */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();

  constructor(private readonly source: ByteSource) {
    const where = source.name;
    const { count, cdOffset, cdSize } = this.findDirectory();
    if (cdOffset + cdSize > source.size) throw new FormatError(`${where}: truncated: the central directory [${cdOffset}, ${cdOffset + cdSize}) ends past the file's ${source.size} bytes`);
    const cd = source.read(cdOffset, cdSize, 'the zip central directory');
    const v = view(cd);
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 46 > cd.length || v.getUint32(at, true) !== SIG_CENTRAL) throw new FormatError(`${where}: zip central directory record ${i} is corrupt`);
      const flags = v.getUint16(at + 8, true);
      const method = v.getUint16(at + 10, true);
      const crc = v.getUint32(at + 16, true);
      let compressedSize = v.getUint32(at + 20, true);
      let size = v.getUint32(at + 24, true);
      const nameLen = v.getUint16(at + 28, true);
      const extraLen = v.getUint16(at + 30, true);
      const commentLen = v.getUint16(at + 32, true);
      const disk = v.getUint16(at + 34, true);
      let localOffset = v.getUint32(at + 42, true);
      const end = at + 46 + nameLen + extraLen + commentLen;
      if (end > cd.length) throw new FormatError(`${where}: zip central directory record ${i} runs past the directory`);
      const name = new TextDecoder('utf-8').decode(cd.subarray(at + 46, at + 46 + nameLen));
      // zip64 extended information: the 64-bit values of the fields saturated at 0xffffffff, in order.
      const extra = view(cd.subarray(at + 46 + nameLen, at + 46 + nameLen + extraLen));
      for (let e = 0; e + 4 <= extra.byteLength;) {
        const id = extra.getUint16(e, true);
        const len = extra.getUint16(e + 2, true);
        if (e + 4 + len > extra.byteLength) throw new FormatError(`${where}: zip entry '${name}' has a corrupt extra field`);
        if (id === 0x0001) {
          let p = e + 4;
          const take = (what: string): number => {
            if (p + 8 > e + 4 + len) throw new FormatError(`${where}: zip entry '${name}' has a short zip64 extra field`);
            const x = u64(extra, p, what, `${where}: zip entry '${name}'`);
            p += 8;
            return x;
          };
          if (size === 0xffffffff) size = take('size');
          if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
          if (localOffset === 0xffffffff) localOffset = take('offset');
        }
        e += 4 + len;
      }
      if (flags & 1) throw new FormatError(`${where}: zip entry '${name}' is encrypted (not supported)`);
      if (disk !== 0 && disk !== 0xffff) throw new FormatError(`${where}: multi-disk zip archives are not supported`);
      if (method !== 0 && method !== 8) throw new FormatError(`${where}: zip entry '${name}' uses compression method ${method} (only stored and deflate are supported)`);
      if (method === 0 && compressedSize !== size) throw new FormatError(`${where}: stored zip entry '${name}' has compressed size ${compressedSize} ≠ size ${size}`);
      if (this.entries.has(name)) throw new FormatError(`${where}: zip entry '${name}' appears twice`);
      this.entries.set(name, { name, method, compressedSize, size, crc32: crc, localOffset });
      at = end;
    }
  }

  /** Locates the central directory through the (zip64) end-of-central-directory record. */
  private findDirectory(): { count: number; cdOffset: number; cdSize: number } {
    const { source } = this;
    const where = source.name;
    if (source.size < EOCD_SIZE) throw new FormatError(`${where}: truncated or not a zip file (${source.size} bytes)`);
    const tailLen = Math.min(source.size, EOCD_SIZE + MAX_COMMENT);
    const tailStart = source.size - tailLen;
    const tail = source.read(tailStart, tailLen, 'the zip end record');
    const tv = view(tail);
    let eocd = -1;
    for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new FormatError(`${where}: no zip end-of-central-directory record (truncated, or not a zip file)`);
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) {
      if (tv.getUint16(eocd + 4, true) !== 0xffff) throw new FormatError(`${where}: multi-disk zip archives are not supported`);
    }
    const locAt = eocd - 20;
    if (locAt >= 0 && tv.getUint32(locAt, true) === SIG_EOCD64_LOCATOR) {
      const recOffset = u64(tv, locAt + 8, 'zip64 end record offset', where);
      const rec = view(source.read(recOffset, 56, 'the zip64 end record'));
      if (rec.getUint32(0, true) !== SIG_EOCD64) throw new FormatError(`${where}: the zip64 end record is corrupt`);
      count = u64(rec, 32, 'entry count', where);
      cdSize = u64(rec, 40, 'central directory size', where);
      cdOffset = u64(rec, 48, 'central directory offset', where);
    } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw new FormatError(`${where}: the zip needs a zip64 end record but has none (truncated?)`);
    }
    if (count * 46 > cdSize) throw new FormatError(`${where}: the zip central directory (${cdSize} bytes) cannot hold ${count} entries`);
    return { count, cdOffset, cdSize };
  }

  /** The entry of that name; E_FORMAT naming `what` it was looked for as when absent. */
  entry(name: string, what = 'entry'): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new FormatError(`${this.source.name}: the zip has no ${what} '${name}'`);
    return e;
  }

  /** Offset of the entry's data in the file, from its local header (checked against the central record). */
  dataOffset(entry: ZipEntry): number {
    const where = `${this.source.name}: zip entry '${entry.name}'`;
    const local = view(this.source.read(entry.localOffset, 30, `the local header of '${entry.name}'`));
    if (local.getUint32(0, true) !== SIG_LOCAL) throw new FormatError(`${where}: bad local header signature`);
    if (local.getUint16(8, true) !== entry.method) throw new FormatError(`${where}: local and central headers disagree on the compression method`);
    const nameLen = local.getUint16(26, true);
    const extraLen = local.getUint16(28, true);
    const name = new TextDecoder('utf-8').decode(this.source.read(entry.localOffset + 30, nameLen, `the local header of '${entry.name}'`));
    if (name !== entry.name) throw new FormatError(`${where}: the local header names '${name}'`);
    const start = entry.localOffset + 30 + nameLen + extraLen;
    if (start + entry.compressedSize > this.source.size) {
      throw new FormatError(`${this.source.name}: truncated: zip entry '${entry.name}' needs bytes [${start}, ${start + entry.compressedSize}) but the file has ${this.source.size}`);
    }
    return start;
  }

  /**
   * The entry's whole contents, inflated when deflated, with its CRC-32 checked. From a file, the
   * bytes start at byteOffset 0 of their buffer; from memory, a stored entry is a view. With
   * `scratch`, a stored entry may be read into the source's reused buffer (valid until its next
   * scratch read).
   */
  read(entry: ZipEntry, scratch = false): Uint8Array {
    const where = `${this.source.name}: zip entry '${entry.name}'`;
    const start = this.dataOffset(entry);
    const raw = this.source.read(start, entry.compressedSize, `zip entry '${entry.name}'`, scratch && entry.method === 0);
    let data = raw;
    if (entry.method === 8) {
      try {
        const out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(entry.size, 1) });
        data = new Uint8Array(out.byteLength);
        data.set(out);
      } catch (err) {
        throw new FormatError(`${where}: corrupt deflate data (${(err as Error).message})`);
      }
      if (data.byteLength !== entry.size) throw new FormatError(`${where}: inflates to ${data.byteLength} bytes, not ${entry.size}`);
    }
    const crc = crc32(data);
    if (crc !== entry.crc32) {
      throw new FormatError(`${where}: CRC-32 mismatch (0x${crc.toString(16)} ≠ 0x${entry.crc32.toString(16)}): the file is corrupt`);
    }
    return data;
  }
}
