/**
 * Runs a person can trust: divergence stops a run with E_DIVERGED naming the steps and the last
 * good checkpoint (no checkpoint of a diverged state is written, and a fresh run that never wrote
 * one leaves no directory behind); one process at a time holds a run directory's lock, and a lock
 * or a directory left by a dead process is taken over with a notice; a stop request ends a run
 * after the current update with a checkpoint, from which it resumes bit for bit; key combinations
 * that cannot work are config mistakes before anything is written.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { flatten, nerTask, RequestError, type ConfigValues, type NerConfig, type TrainEvent } from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectCode, expectCodeAsync } from '../../core-cuda/test/helpers.js';

const TINY: ConfigValues<NerConfig> = {
  data: { dev: '', max_length: 32 },
  model: { hidden: 32, layers: 1, heads: 2, intermediate: 64 },
  head: { size: 16 },
  train: { batch_size: 8, steps: 8, log_every: 1 },
};
const tiny = (extra: ConfigValues<NerConfig> = {}) => ({ ...flatten(TINY), ...flatten(extra) }) as ConfigValues<NerConfig>;

const trainLosses = (dir: string): [number, number][] =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; loss: number })
    .filter((r) => r.kind === 'train')
    .map((r) => [r.step, r.loss]);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-run-safety-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

describe('divergence', () => {
  it('a fresh run that diverges before its first checkpoint stops with E_DIVERGED and leaves no directory', async () => {
    const runDir = path.join(tmp, 'diverged-fresh');
    const err = await expectCodeAsync(nerTask.train({ values: tiny({ optim: { lr: 1e10 }, train: { steps: 30, max_nonfinite: 3 } }), runDir }), 'E_DIVERGED');
    expect(err.message).toMatch(/the loss or gradient norm was not finite for 3 updates in a row \(steps \d+–\d+\); no checkpoint was written/);
    expect(existsSync(runDir)).toBe(false);
  });

  it('a run that diverges after a checkpoint names it, and writes no checkpoint of the diverged state', async () => {
    const runDir = path.join(tmp, 'diverged-later');
    const err = await expectCodeAsync(
      nerTask.train({ values: tiny({ optim: { lr: 1e10 }, train: { steps: 30, save_every: 1, max_nonfinite: 2 } }), runDir }),
      'E_DIVERGED',
    );
    const index = JSON.parse(readFileSync(path.join(runDir, 'checkpoints.json'), 'utf8')) as { last: { step: number; dir: string } };
    expect(err.message).toContain(`the last good checkpoint is ${path.join(runDir, index.last.dir)} (step ${index.last.step})`);
    const losses = trainLosses(runDir);
    // the checkpoint is of the last update whose loss was finite
    expect(Number.isFinite(losses.find(([s]) => s === index.last.step)![1])).toBe(true);
    expect(losses.filter(([s]) => s > index.last.step).every(([, l]) => !Number.isFinite(l))).toBe(true);
    const weights = kx.io.loadSafetensors(path.join(runDir, index.last.dir, 'model.safetensors'));
    for (const t of Object.values(weights)) expect(t.toFloat32Array().every(Number.isFinite)).toBe(true);
    kx.dispose(weights);
  });
});

describe('the run lock', () => {
  let runDir: string;
  beforeAll(async () => {
    runDir = path.join(tmp, 'locked');
    await nerTask.train({ values: tiny({ train: { stop_at: 2 } }), runDir });
  });

  it('is released when a run ends, refuses a second process, and is taken over from a dead one', async () => {
    expect(existsSync(path.join(runDir, 'lock'))).toBe(false);
    // a live owner: this process, as if another run of it held the directory
    writeFileSync(path.join(runDir, 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), started: 'then' }));
    const busy = await expectCodeAsync(nerTask.train({ resume: runDir }), 'E_IO');
    expect(busy.message).toContain(`is in use by process ${process.pid} on ${hostname()} (since then)`);
    expect(trainLosses(runDir).map(([s]) => s)).toEqual([1, 2]);
    const dead = deadPid();
    writeFileSync(path.join(runDir, 'lock'), JSON.stringify({ pid: dead, host: hostname(), started: 'before' }));
    const events: TrainEvent[] = [];
    const r = await nerTask.train({ resume: runDir, onEvent: (e) => events.push(e) });
    expect(r.step).toBe(8);
    expect(events.find((e) => e.type === 'notice')).toMatchObject({ message: `took over the lock of ${runDir} from process ${dead} (started before), which is gone` });
    expect(existsSync(path.join(runDir, 'lock'))).toBe(false);
  });

  it('a directory left by a run that died before its first checkpoint is taken over by a new run', async () => {
    const dir = path.join(tmp, 'dead-before-checkpoint');
    mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
    writeFileSync(path.join(dir, 'config.json'), '{}');
    writeFileSync(path.join(dir, 'lock'), JSON.stringify({ pid: deadPid(), host: hostname(), started: 'x' }));
    const events: TrainEvent[] = [];
    await nerTask.train({ values: tiny({ train: { steps: 2 } }), runDir: dir, onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.type === 'notice').map((e) => (e as { message: string }).message)).toContain(`${dir} held a run that stopped before its first checkpoint: starting it anew`);
    expect(existsSync(path.join(dir, 'checkpoints.json'))).toBe(true);
    // a new directory (the run's own lock its only entry when it checks) gets no such notice
    const fresh: TrainEvent[] = [];
    await nerTask.train({ values: tiny({ train: { steps: 2 } }), runDir: path.join(tmp, 'fresh'), onEvent: (e) => fresh.push(e) });
    expect(fresh.filter((e) => e.type === 'notice')).toEqual([]);
    // a directory with anything else in it is not taken
    const other = path.join(tmp, 'other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'notes.txt'), 'mine');
    expect((await expectCodeAsync(nerTask.train({ values: tiny(), runDir: other }), 'E_ARG')).message).toMatch(/already exists and is not empty/);
    expect(readFileSync(path.join(other, 'notes.txt'), 'utf8')).toBe('mine');
  });
});

describe('a stop request', () => {
  it('ends the run after the current update with a checkpoint, and the resumed run computes what an uninterrupted one does', async () => {
    const whole = path.join(tmp, 'whole');
    await nerTask.train({ values: tiny(), runDir: whole });
    const stopped = path.join(tmp, 'stopped');
    const stop = new AbortController();
    const r = await nerTask.train({ values: tiny(), runDir: stopped, stop: stop.signal, onEvent: (e) => e.type === 'step' && e.step === 3 && stop.abort() });
    expect([r.step, r.stoppedEarly, r.interrupted]).toEqual([3, true, true]);
    expect(JSON.parse(readFileSync(path.join(stopped, 'checkpoints.json'), 'utf8')).last.step).toBe(3);
    const resumed = await nerTask.train({ resume: stopped });
    expect([resumed.step, resumed.interrupted]).toEqual([8, false]);
    expect(trainLosses(stopped)).toEqual(trainLosses(whole));
  });
});

describe('keys that cannot work together', () => {
  const cases: [string[], RegExp][] = [
    [['model.heads=3'], /model\.heads \(3\) must divide model\.hidden \(32\)/],
    [['model.heads=32'], /model\.hidden \/ model\.heads \(1\) must be even for RoFormer: RoPE rotates pairs/],
    [['head.size=63'], /head\.size \(63\) must be even/],
    [['model.kind=bert', 'data.max_length=1000', 'model.max_positions=16'], /data\.max_length \(1000\) must be at most model\.max_positions \(16\)/],
    [['train.seed=1e20'], /config key train\.seed: must be at most 9007199254740991/],
    [['train.threads=1000'], /config key train\.threads: must be at most 256/],
  ];
  for (const [overrides, message] of cases) {
    it(`${overrides.join(' ')} is a config mistake`, () => {
      const err = expectCode(() => nerTask.resolve({ values: TINY, overrides }), 'E_ARG');
      expect(err).toBeInstanceOf(RequestError);
      expect(err.message).toMatch(message);
    });
  }
});
