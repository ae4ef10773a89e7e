/**
 * Data-parallel training on MPI (`mpirun -np 2 --oversubscribe kexue train ner …`, as CI runs it):
 * with dropout off, 2 processes over the same global batches give the 1-process run's loss curve and
 * weights within float32 reduction-order tolerance over 100 updates (an uneven split of each batch,
 * gradient accumulation, Tiger, overlapped buckets), and so does MLM, whose loss averages over
 * chosen positions; rank 0 alone writes the run; a rank killed mid-run ends the job (the launcher
 * stops the others) and one that stops answering makes rank 0 fail with E_DIST within the timeout;
 * either way the run resumes from its last checkpoint, here with 1 process, where it continues the
 * uninterrupted run. Skipped, with the reason, only without mpirun.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { checkpointDir, readMetrics, type MetricsRecord } from '@kexue/models';
import { describe, expect, it } from 'vitest';

import { useTempDir } from '../../core-cuda/test/helpers.js';
import { MPIRUN_FLAGS, mpirun, mpiUnavailable, repoRoot } from '../../core-cuda/test/mpi_helpers.js';

const noMpi = mpiUnavailable();
const KEXUE = path.join(repoRoot, 'packages/cli/bin/kexue.js');
// a tiny NER model, dropout off, one thread per process; batches of 9 split 4 + 5 between 2 ranks
const KEYS = [
  'model.hidden=16',
  'model.layers=1',
  'model.heads=2',
  'model.intermediate=32',
  'head.size=8',
  'model.dropout=0',
  'data.max_length=32',
  'data.dev=',
  'train.batch_size=9',
  'train.grad_accum=2',
  'train.log_every=1',
  'train.threads=1',
];
// buckets of 256 KiB: the gradients are reduced in several, started during the backward pass
const ENV = { KEXUE_PROGRESS: 'lines', KEXUE_DIST_TIMEOUT: '20', KEXUE_DIST_BUCKET_MB: '0.25' };

/** `kexue train ner` (or another task) in one plain process. */
function trainAlone(runDir: string, keys: string[], resume = false, task = 'ner') {
  const where = resume ? ['--resume', runDir] : ['--run-dir', runDir];
  const r = spawnSync(process.execPath, [KEXUE, 'train', task, ...where, ...(resume ? [] : task === 'ner' ? KEYS : []), ...keys], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, ...ENV },
    timeout: 120_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return r;
}

const losses = (runDir: string) => readMetrics(path.join(runDir, 'metrics.jsonl')).filter((r: MetricsRecord) => r.kind === 'train');

function weights(runDir: string): Record<string, Float32Array> {
  const file = kx.io.readSafetensors(path.join(checkpointDir(runDir, 'last'), 'model.safetensors'));
  return Object.fromEntries(Object.entries(file.tensors).map(([k, t]) => [k, t.dataSync() as Float32Array]));
}

/** The largest difference of two runs' weights, relative to each tensor's largest magnitude. */
function weightDifference(a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  let worst = 0;
  for (const [k, x] of Object.entries(a)) {
    const y = b[k]!;
    let scale = 1e-12;
    let diff = 0;
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(x[i]!));
      diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

function expectSameCurve(a: MetricsRecord[], b: MetricsRecord[]) {
  expect(b.map((r) => r.step)).toEqual(a.map((r) => r.step));
  for (let i = 0; i < a.length; i++) {
    expect(Math.abs((b[i]!.loss as number) - (a[i]!.loss as number)) / Math.abs(a[i]!.loss as number), `step ${a[i]!.step}`).toBeLessThan(1e-4);
    expect(Math.abs((b[i]!.grad_norm as number) - (a[i]!.grad_norm as number)) / (a[i]!.grad_norm as number), `step ${a[i]!.step}`).toBeLessThan(1e-3);
  }
}

describe.skipIf(noMpi !== null)(`data-parallel training under mpirun${noMpi ? ` (skipped: ${noMpi})` : ''}`, () => {
  const tmp = useTempDir('kexue-dist-train-');

  it('2 processes give the 1-process loss curve and weights over 100 updates; rank 0 alone writes', () => {
    const alone = path.join(tmp, 'alone');
    const pair = path.join(tmp, 'pair');
    trainAlone(alone, ['train.steps=100']);
    // the all-reduce overlapped with the backward pass (the kill test below runs the CPU default, after it)
    const job = mpirun(2, [process.execPath, KEXUE, 'train', 'ner', '--run-dir', pair, ...KEYS, 'train.steps=100'], { ...ENV, KEXUE_DIST_OVERLAP: '1' });
    expect(job.status, job.stderr).toBe(0);
    // one summary line, rank 0's, naming the job's size
    const summaries = job.stdout.split('\n').filter((l) => l.startsWith('{'));
    expect(summaries.length).toBe(1);
    expect(JSON.parse(summaries[0]!)).toMatchObject({ run_dir: pair, processes: 2, step: 100 });
    const a = losses(alone);
    expect(a.length).toBe(100);
    expectSameCurve(a, losses(pair));
    expect(weightDifference(weights(alone), weights(pair))).toBeLessThan(1e-3);
    // the learning happened: the loss fell
    expect(a[99]!.loss as number).toBeLessThan(a[0]!.loss as number);
    // the data-parallel records say what the all-reduce cost and how much of it the backward pass hid
    for (const r of losses(pair)) {
      expect(r.allreduce_ms as number).toBeGreaterThan(0);
      expect(r.allreduce_hidden as number).toBeGreaterThanOrEqual(0);
      expect(r.allreduce_hidden as number).toBeLessThanOrEqual(1);
    }
    // one writer: no stray files beside the single-process run's
    expect(readdirSync(pair).filter((f) => !f.startsWith('events.')).sort()).toEqual(readdirSync(alone).filter((f) => !f.startsWith('events.')).sort());
  });

  it('a loss averaged over chosen positions (MLM) is weighted by them: the 1-process curve', () => {
    const keys = ['model.hidden=16', 'model.layers=1', 'model.heads=2', 'model.intermediate=32', 'model.dropout=0', 'data.max_length=32', 'data.dev='];
    const more = ['train.batch_size=9', 'train.steps=30', 'train.log_every=1', 'train.threads=1'];
    const alone = path.join(tmp, 'mlm-alone');
    const pair = path.join(tmp, 'mlm-pair');
    trainAlone(alone, [...keys, ...more], false, 'mlm');
    const job = mpirun(2, [process.execPath, KEXUE, 'train', 'mlm', '--run-dir', pair, ...keys, ...more], ENV);
    expect(job.status, job.stderr).toBe(0);
    expectSameCurve(losses(alone), losses(pair));
    expect(weightDifference(weights(alone), weights(pair))).toBeLessThan(1e-3);
  });

  it('3 processes on batches of 2 (one share empty each update) still give the 1-process run', () => {
    const keys = ['train.batch_size=2', 'train.grad_accum=1', 'train.steps=10'];
    const alone = path.join(tmp, 'three-alone');
    const trio = path.join(tmp, 'three');
    trainAlone(alone, keys);
    // overlapped: the empty share hands the reducer its zeros
    const job = mpirun(3, [process.execPath, KEXUE, 'train', 'ner', '--run-dir', trio, ...KEYS, ...keys], { ...ENV, KEXUE_DIST_OVERLAP: '1' });
    expect(job.status, job.stderr).toBe(0);
    expectSameCurve(losses(alone), losses(trio));
    expect(weightDifference(weights(alone), weights(trio))).toBeLessThan(1e-3);
  });

  it('a rank killed mid-run ends the job within the timeout; the run resumes from its last checkpoint with 1 process', async () => {
    const alone = path.join(tmp, 'alone80');
    const pair = path.join(tmp, 'killed');
    trainAlone(alone, ['train.steps=80']);
    const t0 = performance.now();
    const { code, output, seconds } = await signalRankMidRun(pair, 'SIGKILL', ENV);
    expect(code).not.toBe(0);
    expect(output).toMatch(/signal 9|Killed/);
    // the launcher stopped rank 0 long before KEXUE_DIST_TIMEOUT's 20 s would have
    expect(seconds).toBeLessThan(20);
    expect(performance.now() - t0).toBeLessThan(90_000);
    // rank 0 is gone too (mpirun may return while the signalled process is still being taken down)
    const owner = (JSON.parse(readFileSync(path.join(pair, 'lock'), 'utf8')) as { pid: number }).pid;
    const gone = performance.now();
    while (alive(owner)) {
      expect(performance.now() - gone, `rank 0 (pid ${owner}) outlived mpirun`).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 50));
    }
    // resumed from the step-10 checkpoint (at least), with 1 process and the same global batch
    const resumed = trainAlone(pair, [], true);
    expect(resumed.stderr).toMatch(/resum/i);
    expect(resumed.stderr).toMatch(/took over the lock/);
    expectSameCurve(losses(alone), losses(pair));
    expect(weightDifference(weights(alone), weights(pair))).toBeLessThan(1e-3);
  });

  it('a rank that stops answering mid-run makes rank 0 fail with E_DIST within KEXUE_DIST_TIMEOUT; the run resumes', async () => {
    const pair = path.join(tmp, 'stopped');
    // SIGSTOP: rank 1 neither dies nor answers, which mpirun cannot see: rank 0's timeout must
    const { code, output, seconds } = await signalRankMidRun(pair, 'SIGSTOP', { ...ENV, KEXUE_DIST_TIMEOUT: '3' });
    expect(code).not.toBe(0);
    expect(output).toMatch(/kexue: error \[E_DIST\]: dist: the all-reduce of \d+ tensors? \(\d+ bytes\) did not finish within 3 s: another process of the job has died or stopped answering/);
    expect(seconds).toBeGreaterThanOrEqual(2.9);
    expect(seconds).toBeLessThan(20);
    // rank 0 failed in its own time: it released the run's lock on the way out
    expect(existsSync(path.join(pair, 'lock'))).toBe(false);
    const resumed = trainAlone(pair, [], true);
    expect(resumed.stderr).toMatch(/resum/i);
    expect(losses(pair).at(-1)!.step).toBe(80);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Trains 80 updates in 2 processes with a checkpoint every 10, and sends rank 1 `signal` once 15
 * updates are logged; returns mpirun's exit code, the job's output, and the seconds from the signal
 * to the job's end.
 */
async function signalRankMidRun(runDir: string, signal: NodeJS.Signals, env: Record<string, string>) {
  const child = spawn('mpirun', [...MPIRUN_FLAGS, '-np', '2', process.execPath, KEXUE, 'train', 'ner', '--run-dir', runDir, ...KEYS, 'train.steps=80', 'train.save_every=10'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const metrics = path.join(runDir, 'metrics.jsonl');
  let signalledAt = 0;
  while (signalledAt === 0) {
    await new Promise((r) => setTimeout(r, 50));
    if (child.exitCode !== null) throw new Error(`the job ended before the signal:\n${output}`);
    if (!existsSync(metrics) || readMetrics(metrics).length < 15) continue;
    signalledAt = performance.now();
    process.kill(rankPid(child.pid!, 1), signal);
  }
  const code = await exited;
  return { code, output, seconds: (performance.now() - signalledAt) / 1000 };
}

/** The pid of rank `rank` among mpirun's children (Open MPI sets OMPI_COMM_WORLD_RANK in each). */
function rankPid(mpirunPid: number, rank: number): number {
  const children = spawnSync('pgrep', ['-P', String(mpirunPid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
  for (const pid of children) {
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    if (environ.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return pid;
  }
  throw new Error(`no rank ${rank} among mpirun's children ${children.join(', ')}`);
}
