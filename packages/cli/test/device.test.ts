/**
 * The `device` config key and the --device option of train, eval and predict, in-process: a name
 * that is no device is a usage error (exit 2), CUDA on a machine without it is E_NO_CUDA with the
 * reason (exit 1), and neither writes anything; the CPU is the default and `--device cpu` trains
 * the same run bit for bit; a resume keeps the run's device unless told otherwise.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { nerTask } from '@kexue/models';

import { snapshot } from './dir_snapshot.js';
import { repoRoot, run } from './run_cli.js';

const TINY = ['model.hidden=32', 'model.layers=2', 'model.heads=2', 'model.intermediate=64', 'head.size=16', 'data.max_length=48', 'data.dev=', 'train.batch_size=8', 'train.steps=4', 'train.log_every=1'];
const gpu = kx.cuda.isAvailable();

const trainLosses = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; loss: number; grad_norm: number })
    .filter((r) => r.kind === 'train')
    .map((r) => [r.step, r.loss, r.grad_norm]);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-cli-device-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kexue train --device', () => {
  it('rejects a name that is no device with a usage error naming the key, before anything is written', async () => {
    const cases: [string[], RegExp][] = [
      [['device=gpu'], /config key device: expected cpu, cuda or cuda:N, got "gpu"/],
      [['--device', 'gpu'], /config key device: expected cpu, cuda or cuda:N, got "gpu"/],
      [['device=cuda:x'], /config key device: expected cpu, cuda or cuda:N, got "cuda:x"/],
      [['device=CPU'], /config key device: expected cpu, cuda or cuda:N, got "CPU"/],
    ];
    for (const [args, message] of cases) {
      const dir = path.join(tmp, 'bad-name');
      const r = await run(['train', 'ner', ...TINY, ...args, '--run-dir', dir]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(existsSync(dir)).toBe(false);
    }
  });

  it.skipIf(gpu)('without CUDA, device=cuda is E_NO_CUDA with the reason (exit 1) and creates no run directory', async () => {
    const reason = kx.cuda.unavailableReason();
    expect(reason).not.toBe('');
    for (const args of [['device=cuda'], ['--device', 'cuda:1'], ['device=cpu', '--device', 'cuda']]) {
      for (const task of ['ner', 'mlm', 'summarize', 'pegasus']) {
        const dir = path.join(tmp, 'no-cuda');
        const r = await run(['train', task, ...(task === 'ner' ? TINY : []), ...args, '--run-dir', dir]);
        expect(r.code).toBe(1);
        expect(r.err).toContain(`kexue: error [E_NO_CUDA]: CUDA is not available: ${reason}`);
        expect(r.err.trim().split('\n')).toHaveLength(1);
        expect(existsSync(dir)).toBe(false);
      }
    }
  });

  describe('on the CPU', () => {
    let plain: string;
    let before: Record<string, string>;
    beforeAll(async () => {
      plain = path.join(tmp, 'plain');
      expect((await run(['train', 'ner', ...TINY, 'train.stop_at=2', '--run-dir', plain])).code).toBe(0);
      before = snapshot(plain);
    });

    it('is the default, and --device cpu trains the same run bit for bit', async () => {
      const config = JSON.parse(readFileSync(path.join(plain, 'config.json'), 'utf8')) as { device: string };
      expect(config.device).toBe('cpu');
      const explicit = path.join(tmp, 'explicit');
      const r = await run(['train', 'ner', ...TINY, 'train.stop_at=2', '--device', 'cpu', '--run-dir', explicit]);
      expect(r.code).toBe(0);
      expect(r.err).not.toMatch(/device:/);
      expect(trainLosses(explicit)).toEqual(trainLosses(plain));
    });

    it.skipIf(gpu)('a resume may ask for another device: without CUDA that is E_NO_CUDA and the run is untouched', async () => {
      const r = await run(['train', 'ner', '--resume', plain, '--device', 'cuda']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/\[E_NO_CUDA\]/);
      expect(r.err).not.toMatch(/cannot change when resuming/);
      expect(snapshot(plain)).toEqual(before);
    });

    it('a resume with device=cpu given continues the run', async () => {
      const r = await run(['train', 'ner', '--resume', plain, 'device=cpu']);
      expect(r.code).toBe(0);
      expect(trainLosses(plain).map(([step]) => step)).toEqual([1, 2, 3, 4]);
    });
  });

  it("a resume keeps the run's device unless overridden (the other run-control keys start from their defaults)", () => {
    const base = { task: 'ner', device: 'cuda:1', train: { threads: 3, stop_at: 5 } };
    const resolve = (overrides: string[]) => nerTask.resolve({ base, overrides, cwd: repoRoot });
    const kept = resolve([]);
    expect([kept.device, kept.train.threads, kept.train.stop_at]).toEqual(['cuda:1', 0, 0]);
    expect(resolve(['device=cpu']).device).toBe('cpu');
    // a run written before the key existed resumes on the CPU
    expect(nerTask.resolve({ base: { task: 'ner' }, cwd: repoRoot }).device).toBe('cpu');
  });
});

describe('kexue eval / predict --device', () => {
  let trained: string;
  beforeAll(async () => {
    trained = path.join(tmp, 'for-eval');
    expect((await run(['train', 'ner', ...TINY, 'train.steps=2', '--run-dir', trained])).code).toBe(0);
  });

  it('rejects a name that is no device (exit 2)', async () => {
    for (const argv of [
      ['eval', 'ner', trained, '--device', 'gpu'],
      ['predict', 'ner', trained, '--device', 'gpu', '浙商银行'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/--device: expected cpu, cuda or cuda:N, got "gpu"/);
    }
  });

  it.skipIf(gpu)('without CUDA, --device cuda is E_NO_CUDA with the reason (exit 1)', async () => {
    for (const argv of [
      ['eval', 'ner', trained, '--data', 'packages/models/demo/cluener/dev.jsonl', '--device', 'cuda'],
      ['predict', 'ner', trained, '--device', 'cuda', '浙商银行'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`[E_NO_CUDA]: CUDA is not available: ${kx.cuda.unavailableReason()}`);
      expect(r.out).toBe('');
    }
  });

  it('--device cpu (the default) predicts as before', async () => {
    const a = await run(['predict', 'ner', trained, '浙商银行企业信贷部叶老桂博士']);
    const b = await run(['predict', 'ner', trained, '--device', 'cpu', '浙商银行企业信贷部叶老桂博士']);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(b.out).toBe(a.out);
  });
});
