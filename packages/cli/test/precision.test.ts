/**
 * `kexue train --precision` and the `precision` / `loss_scale` config keys, in-process: bad values
 * are usage errors naming the key (exit 2, nothing written), --precision wins over the config
 * file, a mixed-precision run records its precision and loss scale, and a resumed run cannot
 * change its precision.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from './run_cli.js';

const TINY = ['model.hidden=32', 'model.layers=2', 'model.heads=2', 'model.intermediate=64', 'head.size=16', 'data.max_length=48', 'data.dev=', 'train.batch_size=8', 'train.steps=4', 'train.log_every=2'];

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-cli-precision-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kexue train --precision', () => {
  it('rejects a bad precision or loss scale with a usage error naming the key', async () => {
    const cases: [string[], RegExp][] = [
      [['--precision', 'fp8'], /config key precision: expected one of fp32, fp16, bf16, got "fp8"/],
      [['precision=half'], /config key precision: expected one of fp32, fp16, bf16, got "half"/],
      [['loss_scale=0'], /config key loss_scale: expected auto, dynamic, none or a number > 0, got "0"/],
      [['loss_scale=static'], /config key loss_scale: expected auto, dynamic, none or a number > 0/],
    ];
    for (const [args, message] of cases) {
      const dir = path.join(tmp, 'bad');
      const r = await run(['train', 'ner', ...TINY, ...args, '--run-dir', dir]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(existsSync(dir)).toBe(false);
    }
  });

  it('trains in bf16 (the option wins over the file), records the loss scale, and refuses another precision on resume', async () => {
    const file = path.join(tmp, 'mp.yaml');
    writeFileSync(file, 'precision: fp16\nloss_scale: 256\n');
    const dir = path.join(tmp, 'bf16');
    const r = await run(['train', 'ner', ...TINY, '--config', file, '--precision', 'bf16', '--run-dir', dir]);
    expect(r.err).toContain('mixed precision: bf16 (loss scale 256) compute');
    expect(r.code).toBe(0);
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { precision: string; loss_scale: string };
    expect([config.precision, config.loss_scale]).toEqual(['bf16', '256']);
    const records = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number; loss_scale: number });
    for (const rec of records) {
      expect(rec.loss_scale).toBe(256);
      expect(Number.isFinite(rec.loss)).toBe(true);
    }
    const changed = await run(['train', 'ner', '--resume', dir, '--precision', 'fp32']);
    expect(changed.code).toBe(2);
    expect(changed.err).toMatch(/config key precision cannot change when resuming/);
  });
});
