/**
 * Creating directories with the real reason when it fails. Node's recursive mkdir reports some
 * failures as ENOENT: when mkdir of a missing component fails (EROFS on a read-only file system,
 * EACCES), it stats that component, which does not exist, and returns the stat's error instead.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import { ioError } from '../errors.js';

/**
 * Creates `dir` and its missing parents (nothing to do when it is a directory already). When it
 * cannot, E_IO `${action}: <why>` (default `cannot create directory DIR`), the reason being that
 * of the first component that could not be made ('read-only file system (EROFS)').
 */
export function makeDirectory(dir: string, action = `cannot create directory ${dir}`): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const cause = realCause(dir, err);
    if (cause !== null) throw ioError(action, cause);
  }
}

/** Why `dir` could not be made: the error of making its first missing component alone; null when it can be made after all. */
function realCause(dir: string, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return err;
  let first = path.resolve(dir);
  for (let parent = path.dirname(first); parent !== first && !existsSync(parent); parent = path.dirname(parent)) first = parent;
  try {
    mkdirSync(first);
  } catch (e) {
    return e;
  }
  // made now (a parent appeared meanwhile): the rest once more
  try {
    mkdirSync(dir, { recursive: true });
    return null;
  } catch (e) {
    return e;
  }
}
