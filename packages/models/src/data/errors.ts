/**
 * Errors of the dataset readers: a malformed record is a `DataFormatError` (code E_FORMAT) that
 * names the file and the 1-based line; a file that cannot be read is a `KexueIOError` (E_IO).
 */
import { FormatError } from '@kexue/core-cuda';

/** A malformed record: `file:line: reason`. `line` is 1-based, counted in '\n'-terminated lines. */
export class DataFormatError extends FormatError {
  /** The file being read, as given to the reader. */
  readonly file: string;
  /** The 1-based line where the problem was found. */
  readonly line: number;
  /** What is wrong, without the location. */
  readonly reason: string;

  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

/**
 * Thrown by format parsers, which do not know the file name: the record stream turns it into a
 * DataFormatError. Internal to the readers.
 */
export class Malformed extends Error {
  readonly line: number;
  constructor(line: number, reason: string) {
    super(reason);
    this.line = line;
  }
}
