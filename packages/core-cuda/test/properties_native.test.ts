// Property-based tests of the native layer, in a child process: every op of ops.def called through
// runKernel (no TS validation in front) with arbitrary inputs and attributes must return readable
// tensors or throw a KexueError, never crash, hang or leak (property_native_fuzz.ts). A native abort
// or signal, or a run past the time limit, fails this test with the call that was running, instead
// of killing vitest's worker.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { SEED } from './property_support.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const RUNS_PER_OP = Math.max(1, Math.round(800 * Number(process.env.KEXUE_PROP_RUNS ?? 1)));
const TIME_LIMIT_MS = 90_000;

/** Runs the fuzz script for `ops` (all when empty); returns its outcome, naming the call a crash or hang interrupted. */
function fuzz(ops: string[]): { ok: boolean; report: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'kexue-fuzz-'));
  const last = path.join(dir, 'last-call.txt');
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', path.join(here, 'property_native_fuzz.ts'), String(SEED), String(RUNS_PER_OP), last, ...ops], {
      cwd: path.join(here, '..'),
      encoding: 'utf8',
      timeout: TIME_LIMIT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    const lastCall = (() => {
      try {
        return readFileSync(last, 'utf8').trim();
      } catch {
        return '(none recorded)';
      }
    })();
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.slice(-4000);
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') {
      return { ok: false, report: `the fuzz run passed ${TIME_LIMIT_MS} ms (a hang?) during ${lastCall}\n${tail}` };
    }
    if (r.signal !== null || r.status !== 0) {
      const how = r.signal ? `was killed by ${r.signal} (a native crash)` : `exited with ${r.status}`;
      return { ok: false, report: `the fuzz process ${how}; the call running: ${lastCall} (seed ${SEED})\n${tail}` };
    }
    return { ok: true, report: tail };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('properties: the native layer under arbitrary calls (child process)', () => {
  it('every op of ops.def, through runKernel with random inputs and attributes, returns readable tensors or a KexueError: no crash, hang or leak', () => {
    const { ok, report } = fuzz([]);
    expect(ok, report).toBe(true);
    // The run reached the kernels often, not only the checks in front of them.
    const summary = JSON.parse(report.trim().split('\n').pop()!) as { outcomes: Record<string, number> };
    expect(summary.outcomes.ok ?? 0).toBeGreaterThan(1000);
  });

  it('globalPointerScores on q/k with no heads ([B, 0, n, d]) gives an empty result and gradient (was SIGFPE: 0/0 in the CPU kernel)', () => {
    // In a child too: on a regression this divides by zero and kills the process.
    const code = `
      const kx = await import(${JSON.stringify(path.join(here, '..', 'src', 'index.ts'))});
      const out = [];
      for (const shape of [[1, 0, 2, 4], [0, 0, 2, 4], [2, 0, 0, 3]]) {
        const q = kx.zeros(shape);
        out.push(kx.globalPointerScores(q, q).shape);
        const { grads } = kx.valueAndGrad(([a]) => kx.sum(kx.globalPointerScores(a, a)), [q]);
        out.push(grads[0].shape);
      }
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', '--input-type=module', '--eval', code], { cwd: path.join(here, '..'), encoding: 'utf8', timeout: TIME_LIMIT_MS });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([[1, 0, 2, 2], [1, 0, 2, 4], [0, 0, 2, 2], [0, 0, 2, 4], [2, 0, 0, 0], [2, 0, 0, 3]]);
  });
});
