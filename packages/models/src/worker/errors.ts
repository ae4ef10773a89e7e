/**
 * Errors across a thread boundary: postMessage keeps an Error's message but not its class or its
 * `.code`, so the worker sends what identifies it and the main thread rebuilds the KexueError of
 * the same code (E_IO stays a KexueIOError, E_ARG an ArgumentError, ...), with the worker's stack
 * as its cause.
 */
import { KexueError, kexueErrorOf } from '@kexue/core-cuda';

/** An error as a worker sends it. */
export interface SentError {
  /** The KexueError code, or undefined for any other error (a bug: it becomes E_INTERNAL). */
  code?: string;
  name: string;
  message: string;
  stack?: string;
}

/** What a worker sends for a thrown value. */
export function sendableError(err: unknown): SentError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { code: err instanceof KexueError && typeof code === 'string' ? code : undefined, name: err.name, message: err.message, stack: err.stack };
  }
  return { name: 'Error', message: String(err) };
}

/**
 * The main thread's error for one a worker sent: the KexueError subclass of its code, or E_INTERNAL
 * (naming the original error's class) for anything else. `cause` holds the worker's stack.
 */
export function rebuildError(sent: SentError): KexueError {
  let err: KexueError;
  if (sent.code === undefined) err = new KexueError('E_INTERNAL', `${sent.name}: ${sent.message}`);
  else err = kexueErrorOf(sent.code, sent.message);
  if (sent.stack) {
    const cause = new Error(`in the worker thread: ${sent.message}`);
    // the worker's frames under this message (the stack's first line is the worker's message)
    cause.stack = `Error: ${cause.message}\n${sent.stack.split('\n').filter((l) => /^\s+at /.test(l)).join('\n')}`;
    Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
  }
  return err;
}
