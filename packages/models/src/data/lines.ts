/**
 * A chunked line reader: the file is read in fixed-size chunks through a node stream and split on
 * '\n', so memory stays bounded by the chunk size plus the longest line, whatever the file size.
 * Text is UTF-8; a byte-order mark at the start and a '\r' before each '\n' are removed. A line that
 * is not valid UTF-8, or longer than the limit, comes out as a `BadLine` (its bytes are dropped).
 */
import fs from 'node:fs';
import { isUtf8 } from 'node:buffer';

import { ioError } from '@kexue/core-cuda';

/** A line that could not be turned into text, with the reason. */
export class BadLine {
  constructor(readonly reason: string) {}
}

/** One line: its text, or a BadLine. */
export type RawLine = string | BadLine;

/** Consecutive lines from one chunk of the file. */
export interface LineBatch {
  lines: RawLine[];
  /** 1-based line number of lines[0]. */
  first: number;
  /** Bytes of the file these lines took, terminators included. */
  bytes: number;
}

export interface LineReaderOptions {
  /** Bytes read at a time (default 256 KiB). */
  chunkBytes?: number;
  /** The longest line accepted, in bytes (default 64 MiB); a longer one is a BadLine. */
  maxLineBytes?: number;
}

const NL = 0x0a;

function decode(bytes: Buffer): RawLine[] {
  if (isUtf8(bytes)) return bytes.toString('utf8').split('\n');
  // Rare path: find which lines are broken.
  const out: RawLine[] = [];
  let start = 0;
  for (;;) {
    const end = bytes.indexOf(NL, start);
    const line = bytes.subarray(start, end < 0 ? bytes.length : end);
    out.push(isUtf8(line) ? line.toString('utf8') : new BadLine('invalid UTF-8'));
    if (end < 0) return out;
    start = end + 1;
  }
}

/**
 * Reads `file` as batches of lines. A final line without '\n' is a line too; an empty file has none.
 * Throws KexueIOError (E_IO) when the file cannot be opened or read.
 */
export async function* readLineBatches(file: string, options: LineReaderOptions = {}): AsyncGenerator<LineBatch> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  }
  const stream = handle.createReadStream({ highWaterMark: options.chunkBytes ?? 256 * 1024 });
  try {
    yield* splitLineBatches(stream, options);
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  } finally {
    stream.destroy();
    await handle.close().catch(() => undefined);
  }
}

/**
 * The lines of a stream of bytes (standard input, read once), in batches as readLineBatches makes
 * them from a file; the stream's own errors pass through.
 */
export async function* splitLineBatches(chunks: AsyncIterable<Uint8Array>, options: LineReaderOptions = {}): AsyncGenerator<LineBatch> {
  const maxLineBytes = options.maxLineBytes ?? 64 * 1024 * 1024;
  let next = 1; // number of the next line
  let first = true; // strip a BOM from the first line
  let pending: Buffer[] = []; // bytes of an unfinished line
  let pendingBytes = 0;
  let tooLong = false; // the unfinished line passed the limit: its bytes are being dropped
  const tooLongReason = `line longer than ${maxLineBytes} bytes`;

  const finish = (lines: RawLine[], bytes: number): LineBatch => {
    for (let i = 0; i < lines.length; i++) {
      const s = lines[i]!;
      if (typeof s !== 'string') continue;
      // A string of n UTF-16 units has at most 3n UTF-8 bytes: only long strings need measuring.
      if (s.length > maxLineBytes / 3 && Buffer.byteLength(s) > maxLineBytes) lines[i] = new BadLine(tooLongReason);
      else if (s.length > 0 && s.charCodeAt(s.length - 1) === 13) lines[i] = s.slice(0, -1);
    }
    if (first && lines.length > 0) {
      const s = lines[0]!;
      if (typeof s === 'string' && s.charCodeAt(0) === 0xfeff) lines[0] = s.slice(1);
      first = false;
    }
    const batch = { lines, first: next, bytes };
    next += lines.length;
    return batch;
  };

  for await (const data of chunks) {
    const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const last = chunk.lastIndexOf(NL);
    if (last < 0) {
      pendingBytes += chunk.length;
      if (pendingBytes > maxLineBytes) {
        tooLong = true;
        pending = [];
      } else if (!tooLong) pending.push(chunk);
      continue;
    }
    const firstNl = chunk.indexOf(NL);
    let lines: RawLine[];
    const headBytes = pendingBytes + firstNl;
    if (tooLong || headBytes > maxLineBytes) {
      // The line finished by this chunk's first '\n' is too long; the rest decodes normally.
      lines = [new BadLine(tooLongReason)];
      if (last > firstNl) lines.push(...decode(chunk.subarray(firstNl + 1, last)));
    } else {
      const body = pending.length > 0 ? Buffer.concat([...pending, chunk.subarray(0, last)]) : chunk.subarray(0, last);
      lines = decode(body);
    }
    const bytes = pendingBytes + last + 1;
    pending = [];
    tooLong = false;
    const rest = chunk.subarray(last + 1);
    pendingBytes = rest.length;
    if (rest.length > 0) pending.push(rest);
    yield finish(lines, bytes);
  }
  if (pendingBytes > 0) {
    const lines: RawLine[] = tooLong || pendingBytes > maxLineBytes ? [new BadLine(tooLongReason)] : decode(Buffer.concat(pending));
    yield finish(lines, pendingBytes);
  }
}
