/**
 * Typed errors. Every failure kexue reports is a `KexueError` with a stable `.code`; native errors
 * arrive with the same codes and are rethrown as the matching subclass.
 */

export type ErrorCode =
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_DEVICE'
  | 'E_ARG'
  | 'E_DISPOSED'
  | 'E_OOM'
  | 'E_NO_CUDA'
  | 'E_IO'
  | 'E_FORMAT'
  | 'E_LOAD'
  | 'E_DIVERGED'
  | 'E_NO_MPI'
  | 'E_DIST'
  | 'E_INTERNAL';

export class KexueError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Shapes that do not fit together, or data whose length does not match its shape. */
export class ShapeError extends KexueError {
  constructor(message: string) { super('E_SHAPE', message); }
}
/** A dtype an op does not accept. */
export class DTypeError extends KexueError {
  constructor(message: string) { super('E_DTYPE', message); }
}
/** Tensors on different devices, or a device that does not exist. */
export class DeviceError extends KexueError {
  constructor(message: string) { super('E_DEVICE', message); }
}
/** A bad argument: wrong type, out-of-range value or id, unknown option. */
export class ArgumentError extends KexueError {
  constructor(message: string) { super('E_ARG', message); }
}
/** Use of a tensor after dispose(). */
export class DisposedError extends KexueError {
  constructor(message: string) { super('E_DISPOSED', message); }
}
/** Host or device memory exhausted. */
export class OutOfMemoryError extends KexueError {
  constructor(message: string) { super('E_OOM', message); }
}
/** CUDA asked for where this build or machine has none. */
export class NoCudaError extends KexueError {
  constructor(message: string) { super('E_NO_CUDA', message); }
}
/** A file could not be read or written. */
export class KexueIOError extends KexueError {
  constructor(message: string, options?: { cause?: unknown }) { super('E_IO', message, options); }
}
/** A file's contents are not in the expected format (truncated, corrupt, wrong header). */
export class FormatError extends KexueError {
  constructor(message: string) { super('E_FORMAT', message); }
}
/** Training diverged: its loss or gradients stayed non-finite, or its weights are no longer finite. */
export class DivergedError extends KexueError {
  constructor(message: string) { super('E_DIVERGED', message); }
}
/** Distributed training asked for where MPI (or, on CUDA, NCCL) cannot be opened; the message names what to install. */
export class NoMpiError extends KexueError {
  constructor(message: string) { super('E_NO_MPI', message); }
}
/** A collective failed: a rank died or stopped answering within the timeout, or the ranks disagree. */
export class DistError extends KexueError {
  constructor(message: string) { super('E_DIST', message); }
}
/** The native addon could not be loaded. */
export class LoadError extends KexueError {
  constructor(message: string, options?: { cause?: unknown }) { super('E_LOAD', message, options); }
}

const byCode: Record<string, new (message: string) => KexueError> = {
  E_SHAPE: ShapeError,
  E_DTYPE: DTypeError,
  E_DEVICE: DeviceError,
  E_ARG: ArgumentError,
  E_DISPOSED: DisposedError,
  E_OOM: OutOfMemoryError,
  E_NO_CUDA: NoCudaError,
  E_IO: KexueIOError,
  E_FORMAT: FormatError,
  E_LOAD: LoadError,
  E_DIVERGED: DivergedError,
  E_NO_MPI: NoMpiError,
  E_DIST: DistError,
};

/** The KexueError subclass of a code (E_INTERNAL, or another unknown code, as a plain KexueError of that code). */
export function kexueErrorOf(code: string, message: string): KexueError {
  const Cls = byCode[code];
  return Cls ? new Cls(message) : new KexueError(code as ErrorCode, message);
}

/** Turns an error thrown by the addon into the KexueError subclass of its code. */
export function fromNativeError(err: unknown): KexueError {
  if (err instanceof KexueError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && code in byCode ? kexueErrorOf(code, message) : new KexueError('E_INTERNAL', message, { cause: err });
}

/** The errno codes of file operations, in words. */
const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  EISDIR: 'is a directory',
  ENOTDIR: 'a component of the path is not a directory',
  EEXIST: 'file already exists',
  ENOTEMPTY: 'directory not empty',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'device or resource busy',
  EXDEV: 'not on the same file system',
  EIO: 'input/output error',
};

/**
 * A file-system failure, worded once: `${action}: ${cause}`, the cause in plain words with its
 * errno code in brackets ('cannot read /x.jsonl: no such file or directory (ENOENT)'); for a code
 * without words here, Node's description ('EBADF: bad file descriptor, read' gives 'bad file
 * descriptor (EBADF)'); otherwise the error's message. The error is kept as the cause.
 */
export function ioError(action: string, err: unknown): KexueIOError {
  return new KexueIOError(`${action}: ${ioCause(err)}`, { cause: err });
}

function ioCause(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code !== 'string') return message;
  const words = ERRNO_WORDS[code] ?? (message.startsWith(`${code}: `) ? message.slice(code.length + 2).replace(/, \w+(?: '.*')?$/, '') : '');
  return words ? `${words} (${code})` : message;
}
