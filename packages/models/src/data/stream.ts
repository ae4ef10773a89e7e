/**
 * Record streams: a format parser fed line by line from the chunked reader, iterated with
 * `for await`. Malformed records either stop the stream with a DataFormatError (the default) or
 * are skipped and counted (`onMalformed: 'skip'`).
 */
import { ArgumentError } from '@kexue/core-cuda';

import { DataFormatError, Malformed } from './errors.js';
import { BadLine, readLineBatches, type LineReaderOptions } from './lines.js';

/** Options shared by every reader. */
export interface ReadOptions extends LineReaderOptions {
  /**
   * What a malformed record does: 'error' (default) throws a DataFormatError naming the file and
   * line; 'skip' drops the record, counts it in `stats.skipped` and goes on.
   */
  onMalformed?: 'error' | 'skip';
  /** Called with the error of each skipped record (only with onMalformed: 'skip'). */
  onSkip?: (error: DataFormatError) => void;
}

/** Counts for one pass over a file; reset when a new pass starts. */
export interface ReadStats {
  /** Lines read (terminated or not). */
  lines: number;
  /** Bytes read. */
  bytes: number;
  /** Records produced. */
  records: number;
  /** Malformed records skipped (onMalformed: 'skip'). */
  skipped: number;
  /** Records produced after a repair that the format's reader documents (e.g. tag sequences). */
  repaired: number;
  /** The first skipped records' errors (at most 100), for reporting. */
  errors: DataFormatError[];
}

/**
 * Turns lines into records. `line` returns a finished record or undefined and throws Malformed for
 * a bad one; `end` flushes a pending record at the end of the file; `discard` drops a record in
 * progress that the stream found malformed (a line that is not UTF-8).
 */
export interface LineParser<T> {
  line(text: string, no: number): T | undefined;
  end(): T | undefined;
  discard?(): void;
}

const MAX_KEPT_ERRORS = 100;

function emptyStats(): ReadStats {
  return { lines: 0, bytes: 0, records: 0, skipped: 0, repaired: 0, errors: [] };
}

/**
 * The records of one file, read lazily: each `for await` pass opens and streams the file anew.
 * `stats` describes the current (or last) pass.
 */
export class RecordStream<T> implements AsyncIterable<T> {
  readonly file: string;
  stats: ReadStats = emptyStats();
  readonly #makeParser: (stats: ReadStats) => LineParser<T>;
  readonly #options: ReadOptions;

  constructor(file: string, makeParser: (stats: ReadStats) => LineParser<T>, options: ReadOptions = {}) {
    if (typeof file !== 'string' || file.length === 0) throw new ArgumentError('reader: file must be a non-empty path');
    const mode = options.onMalformed ?? 'error';
    if (mode !== 'error' && mode !== 'skip') {
      throw new ArgumentError(`reader: onMalformed must be 'error' or 'skip', got ${String(mode)}`);
    }
    this.file = file;
    this.#makeParser = makeParser;
    this.#options = options;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    const stats = emptyStats();
    this.stats = stats;
    const parser = this.#makeParser(stats);
    const skip = this.#options.onMalformed === 'skip';
    const onSkip = this.#options.onSkip;
    const fail = (m: Malformed): void => {
      const error = new DataFormatError(this.file, m.line, m.message);
      if (!skip) throw error;
      stats.skipped++;
      if (stats.errors.length < MAX_KEPT_ERRORS) stats.errors.push(error);
      onSkip?.(error);
    };
    const step = (run: () => T | undefined): T | undefined => {
      try {
        return run();
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
        fail(err);
        return undefined;
      }
    };
    for await (const batch of readLineBatches(this.file, this.#options)) {
      stats.bytes += batch.bytes;
      const { lines } = batch;
      for (let i = 0; i < lines.length; i++) {
        const text = lines[i]!;
        const no = batch.first + i;
        stats.lines = no;
        let record: T | undefined;
        if (text instanceof BadLine) {
          parser.discard?.();
          fail(new Malformed(no, text.reason));
        } else {
          try {
            record = parser.line(text, no);
          } catch (err) {
            if (!(err instanceof Malformed)) throw err;
            fail(err);
          }
        }
        if (record !== undefined) {
          stats.records++;
          yield record;
        }
      }
    }
    const record = step(() => parser.end());
    if (record !== undefined) {
      stats.records++;
      yield record;
    }
  }

  /** Reads every record into an array. */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const r of this) out.push(r);
    return out;
  }
}

/** Whether a line holds only whitespace (such lines separate records or are ignored). */
export function isBlank(text: string): boolean {
  if (text.length === 0) return true;
  const c = text.charCodeAt(0);
  // Fast path: a line starting with a visible ASCII or any CJK-range character is not blank.
  if ((c > 32 && c < 127) || (c >= 0x3000 + 1 && c < 0xfeff)) return false;
  return text.trim().length === 0;
}

/** A parser for formats with one record per line; blank lines are ignored. */
export function perLine<T>(parse: (text: string, no: number) => T): LineParser<T> {
  return {
    line: (text, no) => (isBlank(text) ? undefined : parse(text, no)),
    end: () => undefined,
  };
}
