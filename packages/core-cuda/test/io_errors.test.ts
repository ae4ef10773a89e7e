// A file-system failure is worded once (ioError: plain words, the errno code in brackets, the
// error kept as the cause), and a directory that cannot be made says why, on a read-only file
// system too, where Node's recursive mkdir reports ENOENT.
import { closeSync, existsSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode, useTempDir } from './helpers.js';
import { useReadOnlyMount } from './read_only_mount.js';

/** What `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

const errno = (code: string, message: string) => Object.assign(new Error(message), { code });

const readOnlyDir = useReadOnlyMount();
const tmp = useTempDir('kexue-ioerr-');

describe('ioError', () => {
  it('words the common errno codes once, with the code in brackets, and keeps the cause', () => {
    const missing = path.join(tmp, 'nope.jsonl');
    const cause = thrown(() => readFileSync(missing));
    const e = kx.ioError(`cannot read ${missing}`, cause);
    expect(e).toBeInstanceOf(kx.KexueIOError);
    expect(e.code).toBe('E_IO');
    expect(e.message).toBe(`cannot read ${missing}: no such file or directory (ENOENT)`);
    expect(e.cause).toBe(cause);
    const cases: [string, string][] = [
      ['EACCES', 'permission denied (EACCES)'],
      ['EPERM', 'permission denied (EPERM)'],
      ['EROFS', 'read-only file system (EROFS)'],
      ['EISDIR', 'is a directory (EISDIR)'],
      ['ENOTDIR', 'a component of the path is not a directory (ENOTDIR)'],
      ['ENOSPC', 'no space left on device (ENOSPC)'],
      ['EMFILE', 'too many open files (EMFILE)'],
    ];
    for (const [code, words] of cases) expect(kx.ioError('cannot write f', errno(code, `${code}: whatever, open 'f'`)).message).toBe(`cannot write f: ${words}`);
  });

  it("takes Node's description for another code, and the message of an error without one", () => {
    const fd = openSync(path.join(tmp, 'x'), 'w');
    closeSync(fd);
    const badf = thrown(() => readSync(fd, Buffer.alloc(1)));
    expect(kx.ioError('cannot read x', badf).message).toBe('cannot read x: bad file descriptor (EBADF)');
    expect(kx.ioError('cannot read x', errno('EXDEV', "EXDEV: cross-device link not permitted, rename 'a' -> 'b'")).message).toBe(
      'cannot read x: not on the same file system (EXDEV)',
    );
    expect(kx.ioError('cannot read x', errno('EWHAT', 'something odd')).message).toBe('cannot read x: something odd');
    expect(kx.ioError('cannot write x', new Error('the disk said no')).message).toBe('cannot write x: the disk said no');
    expect(kx.ioError('cannot write x', 'a string').message).toBe('cannot write x: a string');
  });
});

describe('io.makeDirectory', () => {
  it('creates a directory and its parents, and leaves one that exists', () => {
    const dir = path.join(tmp, 'a', 'b', 'c');
    kx.io.makeDirectory(dir);
    expect(existsSync(dir)).toBe(true);
    kx.io.makeDirectory(dir);
  });

  it('names the action and the reason: a file in the way', () => {
    const file = path.join(tmp, 'file');
    writeFileSync(file, '');
    expect(expectCode(() => kx.io.makeDirectory(path.join(file, 'run'), 'cannot create run directory R'), 'E_IO').message).toBe(
      'cannot create run directory R: a component of the path is not a directory (ENOTDIR)',
    );
    expect(expectCode(() => kx.io.makeDirectory(file), 'E_IO').message).toBe(`cannot create directory ${file}: file already exists (EEXIST)`);
  });

  it('on a read-only file system says so (not ENOENT), for a directory and for nested ones', (ctx) => {
    const ro = readOnlyDir(ctx);
    for (const dir of [path.join(ro, 'run'), path.join(ro, 'a', 'b', 'run')]) {
      expect(expectCode(() => kx.io.makeDirectory(dir), 'E_IO').message).toBe(`cannot create directory ${dir}: read-only file system (EROFS)`);
      expect(existsSync(dir)).toBe(false);
    }
  });

  it('writeFileAtomic on a read-only file system says so too', async (ctx) => {
    const file = path.join(readOnlyDir(ctx), 'x.json');
    await expect(kx.io.writeFileAtomic(file, async (write) => write(new Uint8Array([1])))).rejects.toMatchObject({
      code: 'E_IO',
      message: `cannot write ${file}: read-only file system (EROFS)`,
    });
  });
});
