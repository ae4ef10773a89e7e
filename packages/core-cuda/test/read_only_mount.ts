/** A read-only file system for tests of write failures: a tmpfs mounted read-only (needs root and mount). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, type TestContext } from 'vitest';

/** The mounted directory, or why it could not be mounted. */
export type ReadOnlyMount = { dir: string; unmount(): void } | { dir: null; refused: string };

/** Mounts an empty read-only tmpfs at a new temporary directory. */
export function mountReadOnly(): ReadOnlyMount {
  const dir = mkdtempSync(path.join(tmpdir(), 'kexue-ro-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmdirSync(dir);
    return { dir: null, refused: `mounting a read-only tmpfs was refused: ${(r.stderr || r.error?.message || `exit code ${r.status}`).trim()}` };
  }
  return {
    dir,
    unmount() {
      spawnSync('umount', [dir]);
      rmdirSync(dir);
    },
  };
}

/**
 * A read-only tmpfs for the tests of this file (mounted before them, unmounted after): call the
 * function returned in a test for its directory; where mounting was refused, the test is skipped
 * with the reason.
 */
export function useReadOnlyMount(): (ctx: TestContext) => string {
  let mount: ReadOnlyMount | null = null;
  beforeAll(() => {
    mount = mountReadOnly();
  });
  afterAll(() => {
    if (mount?.dir) mount.unmount();
  });
  return (ctx) => {
    const m = mount!;
    return m.dir ?? ctx.skip(m.refused);
  };
}
