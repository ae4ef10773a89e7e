/**
 * `kexue train … --nproc N`: runs mpirun for the user (one summary line, rank 0's), refuses a bad
 * count, and names what to install where mpirun is missing. train.compile is refused by every rank
 * of a job started by hand (the CLI's own --nproc refusal is in tasks.test.ts). The run itself is skipped, with the
 * reason, only without mpirun.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { useTempDir } from '../../core-cuda/test/helpers.js';
import { mpirun, mpiUnavailable, repoRoot } from '../../core-cuda/test/mpi_helpers.js';
import { run } from './run_cli.js';

const TINY = ['model.hidden=16', 'model.layers=1', 'model.heads=2', 'model.intermediate=32', 'head.size=8', 'data.max_length=32', 'data.dev=', 'train.batch_size=8', 'train.steps=3', 'train.threads=1'];
const noMpi = mpiUnavailable();

describe('kexue train --nproc', () => {
  const tmp = useTempDir('kexue-nproc-');

  it('--nproc 0 is a usage error', async () => {
    const r = await run(['train', 'ner', '--nproc', '0', ...TINY]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--nproc must be at least 1/);
  });

  it('without mpirun it is E_NO_MPI naming what to install', async () => {
    const r = await run(['train', 'ner', '--nproc', '2', '--run-dir', path.join(tmp, 'none'), ...TINY], { env: { KEXUE_PROGRESS: 'lines', KEXUE_MPIRUN: '/nonexistent/mpirun' } });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/E_NO_MPI.*apt-get install openmpi-bin libopenmpi-dev/);
  });

  it.skipIf(noMpi !== null)(`runs mpirun -np 2: one summary, rank 0's, and one writer${noMpi ? ` (skipped: ${noMpi})` : ''}`, async () => {
    const dir = path.join(tmp, 'pair');
    // more ranks than this machine's cores may be asked for: mpirun's --oversubscribe through KEXUE_MPIRUN_ARGS
    const r = await run(['train', 'ner', '--nproc', '2', '--run-dir', dir, ...TINY], { env: { KEXUE_PROGRESS: 'lines', KEXUE_MPIRUN_ARGS: '--oversubscribe' } });
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines.length).toBe(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ run_dir: dir, processes: 2, step: 3 });
    expect(readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').length).toBeGreaterThan(0);
  });

  it.skipIf(noMpi !== null)(`train.compile under mpirun (started by hand) is refused by every rank before anything is written${noMpi ? ` (skipped: ${noMpi})` : ''}`, () => {
    const dir = path.join(tmp, 'compiled-pair');
    const job = mpirun(2, [process.execPath, path.join(repoRoot, 'packages/cli/bin/kexue.js'), 'train', 'ner', '--run-dir', dir, ...TINY, 'train.compile=true'], { KEXUE_PROGRESS: 'lines' });
    expect(job.status).not.toBe(0);
    expect(job.stderr.split('train.compile=true cannot run data-parallel').length - 1).toBe(2);
    expect(existsSync(dir)).toBe(false);
  });
});
