/**
 * Random-access byte sources for the readers: a file read with positional reads (never loaded
 * whole, so a checkpoint larger than a JS buffer still loads tensor by tensor), or bytes already
 * in memory. Reads past the end are E_FORMAT ("truncated"); an unreadable file is E_IO.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import { ArgumentError, FormatError, KexueIOError, ioError } from '../errors.js';

export interface ByteSource {
  /** Names the source in error messages (a path). */
  readonly name: string;
  /** Total length in bytes. */
  readonly size: number;
  /**
   * `length` bytes from `offset`. The result may be a view of memory the source reuses for the
   * next read (see `scratch`); copy what must outlive it.
   */
  read(offset: number, length: number, what: string, scratch?: boolean): Uint8Array;
  close(): void;
}

function checkRange(source: ByteSource, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new FormatError(`${source.name}: ${what} has a bad byte range (offset ${offset}, length ${length})`);
  }
  if (offset + length > source.size) {
    throw new FormatError(`${source.name}: truncated: ${what} needs bytes [${offset}, ${offset + length}) but the file has ${source.size}`);
  }
}

/** Bytes in memory; reads are views (no copy). */
export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array, readonly name: string) {
    this.size = bytes.byteLength;
  }
  read(offset: number, length: number, what: string): Uint8Array {
    checkRange(this, offset, length, what);
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {}
}

/** Largest single readSync; Node refuses reads of 2 GiB and more. */
const MAX_READ = 1 << 30;

/** An open file read with positional reads into 8-byte-aligned buffers. */
export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;
  private scratchBuf = new Uint8Array(0);

  constructor(readonly name: string) {
    try {
      this.fd = openSync(name, 'r');
    } catch (err) {
      throw ioError(`cannot open ${name}`, err);
    }
    try {
      const st = fstatSync(this.fd);
      if (!st.isFile()) throw new KexueIOError(`cannot read ${name}: not a regular file`);
      this.size = st.size;
    } catch (err) {
      this.close();
      if (err instanceof KexueIOError) throw err;
      throw ioError(`cannot stat ${name}`, err);
    }
  }

  read(offset: number, length: number, what: string, scratch = false): Uint8Array {
    checkRange(this, offset, length, what);
    if (this.fd === null) throw new KexueIOError(`${this.name}: read after close`);
    let out: Uint8Array;
    if (scratch) {
      if (this.scratchBuf.byteLength < length) this.scratchBuf = new Uint8Array(new ArrayBuffer(length));
      out = this.scratchBuf.subarray(0, length);
    } else {
      out = new Uint8Array(new ArrayBuffer(length));
    }
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = readSync(this.fd, out, done, Math.min(length - done, MAX_READ), offset + done);
      } catch (err) {
        throw ioError(`cannot read ${this.name}`, err);
      }
      if (n === 0) throw new FormatError(`${this.name}: truncated while reading ${what} (the file shrank)`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        // nothing useful to do: the data has been read
      }
      this.fd = null;
    }
  }
}

/** Runs `fn` with the file open, closing it afterwards. */
export function withFile<T>(file: string, fn: (source: ByteSource) => T): T {
  if (typeof file !== 'string' || file === '') throw new ArgumentError(`a file path must be a non-empty string, got ${JSON.stringify(file)}`);
  const source = new FileSource(file);
  try {
    return fn(source);
  } finally {
    source.close();
  }
}
