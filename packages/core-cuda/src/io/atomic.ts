/**
 * Atomic file writes: the bytes go to a temporary file beside the target, which is fsynced, closed
 * and renamed over the target, and then the directory is fsynced so that the rename itself is
 * durable. A crash at any point leaves either the old file or the new one, never a mix; a failed
 * write removes its temporary file.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { KexueError, ioError } from '../errors.js';

/** Something that writes the file's contents through `write`, in order. */
export type ContentWriter = (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>;

/** Writes `file` atomically with the chunks `produce` hands to its writer. */
export async function writeFileAtomic(file: string, produce: ContentWriter): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`);
  let created = false;
  try {
    const handle = await fs.open(tmp, 'wx');
    created = true;
    try {
      await produce(async (chunk) => {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
          done += bytesWritten;
        }
      });
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
    created = false;
    await syncDirectory(dir);
  } catch (err) {
    if (created) await fs.rm(tmp, { force: true }).catch(() => undefined);
    if (err instanceof KexueError) throw err;
    throw ioError(`cannot write ${file}`, err);
  }
}

/** fsync of a directory; some platforms (Windows) cannot open one, which is not an error there. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(dir, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await handle.close();
  }
}
