/**
 * kx.dist: collectives across the processes of an MPI job, checked in real 2-process jobs
 * (`mpirun -np 2 --oversubscribe`, dist_worker.ts); a stalled rank gives E_DIST within the timeout,
 * a killed one ends the job; a missing or foreign MPI library is E_NO_MPI naming what to install.
 * The jobs are skipped, with the reason, only where mpirun is absent.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { mpirun, mpiUnavailable, repoRoot, tsNode } from './mpi_helpers.js';

const WORKER = 'packages/core-cuda/test/dist_worker.ts';
const noMpi = mpiUnavailable();

/**
 * dist.init() in a plain process with KEXUE_MPI_LIBRARY set (and MPI asked for, or not), then a
 * mean and a barrier: the error's code and message, or the world and the reduced values.
 */
function initWith(library: string, mpi = true): { code: string; message: string; world?: unknown; reduced?: number[] } {
  const script = `import * as kx from '@kexue/core-cuda';
try {
  const world = kx.dist.init({ mpi: ${mpi} });
  const t = kx.tensor([1, 2], [2]);
  kx.dist.allReduce([t], 'mean');
  kx.dist.barrier();
  console.log(JSON.stringify({ code: 'none', message: '', world, reduced: Array.from(t.dataSync()) }));
} catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const [node, ...flags] = tsNode(WORKER).slice(0, -1);
  const r = spawnSync(node!, [...flags, '--input-type=module', '-e', script], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, KEXUE_MPI_LIBRARY: library },
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { code: string; message: string };
}

describe('kx.dist without MPI', () => {
  it('a library that cannot be opened is E_NO_MPI naming what to install', () => {
    const r = initWith('/nonexistent/libmpi.so.40');
    expect(r.code).toBe('E_NO_MPI');
    expect(r.message).toMatch(/MPI is not available/);
    expect(r.message).toMatch(/apt-get install openmpi-bin libopenmpi-dev/);
  });

  it('a library that is not Open MPI is E_NO_MPI, not misread', () => {
    const r = initWith('libm.so.6');
    expect(r.code).toBe('E_NO_MPI');
    expect(r.message).toMatch(/libm\.so\.6 has no symbol MPI_Initialized: it is not Open MPI/);
  });

  it('outside a launcher, init() makes a world of one without opening MPI', () => {
    const r = initWith('/nonexistent/libmpi.so.40', false);
    expect(r).toEqual({ code: 'none', message: '', world: { rank: 0, size: 1, library: 'none (a single process without MPI)' }, reduced: [1, 2] });
  });

  it('collectives before init are E_DIST', async () => {
    const kx = await import('../src/index.js');
    expect(kx.dist.initialized()).toBe(false);
    expect(() => kx.dist.allReduce([kx.tensor([1], [1])])).toThrow(kx.DistError);
    expect(() => kx.dist.barrier()).toThrow(/call kx.dist.init\(\) first/);
  });
});

describe.skipIf(noMpi !== null)(`kx.dist in 2-process MPI jobs${noMpi ? ` (skipped: ${noMpi})` : ''}`, () => {
  it('all-reduce (sum, mean, buckets, async), broadcast, barrier and bad calls', () => {
    const job = mpirun(2, [...tsNode(WORKER), 'collectives']);
    expect(job.status, job.stderr + job.stdout).toBe(0);
    expect(job.results.length).toBe(2);
    const n = 2;
    const sizes = [3, 1, 40, 7, 5];
    // rank r holds (r + 1)(i + 1) + k/2 at element i of tensor k
    const sum = sizes.map((len, k) => Array.from({ length: len }, (_, i) => ((n * (n + 1)) / 2) * (i + 1) + (n * k) / 2));
    for (const r of job.results) {
      expect(r.size).toBe(2);
      expect(r.library).toMatch(/Open MPI/);
      expect(r.sum).toEqual(sum);
      expect(r.mean).toEqual(sum.map((row) => row.map((x) => x / n)));
      expect(r.intSum).toEqual([3, 30]);
      expect(r.async).toEqual({ first: [0, 3, 6, 9, 12, 15, 18, 0], unrelated: [4, 6] });
      // rank 1's values everywhere
      expect(r.broadcast).toEqual([[1, 1.25], [7], [4, 5, 6]]);
      expect(r.errors).toEqual({ intMean: 'E_DTYPE', uint8Sum: 'E_DTYPE', badOp: 'E_ARG', empty: 'E_ARG', twice: 'E_ARG', badRoot: 'E_ARG', badBucket: 'E_ARG', disposed: 'E_DISPOSED' });
      expect(r.after).toBe(2);
      expect((r.stats as { collectives: number }).collectives).toBe(7);
    }
  });

  it('a rank that stops answering makes the others fail with E_DIST within the timeout, not hang', () => {
    const job = mpirun(2, [...tsNode(WORKER), 'stall'], { KEXUE_DIST_TIMEOUT: '3' }, 60_000);
    expect(job.status).not.toBe(0);
    const r = job.results[0]!;
    expect(r.code).toBe('E_DIST');
    expect(r.message).toMatch(/all-reduce of 1 tensor \(4 bytes\) did not finish within 3 s: another process of the job has died or stopped answering/);
    expect(r.seconds as number).toBeGreaterThanOrEqual(2.9);
    expect(r.seconds as number).toBeLessThan(10);
    // the communicator is broken for good: the process must exit
    expect(r.afterwards).toBe('E_DIST');
    // and the job ends long before rank 1's 15 s sleep would
    expect(job.seconds).toBeLessThan(14);
  });

  it('a rank killed mid-run ends the job with the launcher naming it, within the timeout', () => {
    const job = mpirun(2, [...tsNode(WORKER), 'kill'], { KEXUE_DIST_TIMEOUT: '10' }, 60_000);
    expect(job.status).not.toBe(0);
    expect(job.stderr + job.stdout).toMatch(/exited on signal 9|Exit code:\s+137|killed/i);
    expect(job.seconds).toBeLessThan(30);
  });
});
