/**
 * What `kexue eval` and `kexue predict` tell on stderr instead of doing silently: a run without a
 * best checkpoint is evaluated at its last (said with the step), texts longer than the run's
 * data.max_length are cut (flagged per text and counted). Input files and standard input are
 * decoded strictly, as data files are; a file-system failure names its cause in words once, a run
 * directory on a read-only file system included.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { mlmTask, nerTask, type ConfigValues, type MlmConfig, type NerConfig } from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { useReadOnlyMount } from '../../core-cuda/test/read_only_mount.js';
import { repoRoot, run } from './run_cli.js';

const TINY: ConfigValues<NerConfig> = {
  model: { hidden: 32, layers: 1, heads: 2, intermediate: 64 },
  head: { size: 16 },
  data: { max_length: 8 },
  train: { batch_size: 8, steps: 2, threads: 1 },
};
const NO_BEST = 'the run has no best checkpoint (it was never evaluated): using the last, step 2\n';

const readOnlyDir = useReadOnlyMount();
let tmp: string;
/** NER runs with data.max_length 8: one never evaluated (no best), one evaluated at its end. */
let noBest: string;
let evaluated: string;
let dev: string;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-runcmd-'));
  dev = path.join(tmp, 'dev.jsonl');
  const lines = readFileSync(path.join(repoRoot, 'packages/models/demo/cluener/dev.jsonl'), 'utf8').split('\n').slice(0, 10);
  writeFileSync(dev, `${lines.join('\n')}\n`);
  noBest = path.join(tmp, 'no-best');
  await nerTask.train({ values: { ...TINY, data: { ...TINY.data, dev: '' } }, runDir: noBest });
  evaluated = path.join(tmp, 'evaluated');
  await nerTask.train({ values: { ...TINY, data: { ...TINY.data, dev } }, runDir: evaluated });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a run without a best checkpoint', () => {
  it('eval ner and predict ner use its last and say so; --checkpoint last and an evaluated run say nothing', async () => {
    const e = await run(['eval', 'ner', noBest, '--data', dev]);
    expect(e.code).toBe(0);
    expect(e.err).toBe(NO_BEST);
    const p = await run(['predict', 'ner', noBest, '浙商银行']);
    expect(p.code).toBe(0);
    expect(p.err).toBe(NO_BEST);
    expect((await run(['eval', 'ner', noBest, '--data', dev, '--checkpoint', 'last'])).err).toBe('');
    expect((await run(['eval', 'ner', evaluated, '--data', dev])).err).toBe('');
  });

  it('eval mlm too', async () => {
    const mlm = path.join(tmp, 'mlm');
    const values: ConfigValues<MlmConfig> = { model: { hidden: 32, layers: 1, heads: 2, intermediate: 64 }, data: { dev: '', max_length: 16 }, train: { batch_size: 8, steps: 2, threads: 1 } };
    await mlmTask.train({ values, runDir: mlm });
    const e = await run(['eval', 'mlm', mlm, '--data', dev]);
    expect(e.code).toBe(0);
    expect(e.err).toBe(NO_BEST);
  });
});

describe('kexue predict', () => {
  // data.max_length 8 holds [CLS], six characters and [SEP]
  const six = '浙商银行企业';
  const seven = '浙商银行企业信';
  const long = '浙商银行企业信贷部叶老桂博士';

  it('flags each text longer than data.max_length and counts them on stderr', async () => {
    const r = await run(['predict', 'ner', noBest, '--checkpoint', 'last', six, seven, '叶老桂', long]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as { text: string; truncated?: boolean });
    expect(lines.map((l) => [l.text, l.truncated])).toEqual([
      [six, undefined],
      [seven, true],
      ['叶老桂', undefined],
      [long, true],
    ]);
    expect(r.err).toBe('2 of 4 texts were longer than data.max_length (8 tokens) and were cut; their entities past the cut are not found\n');
    const one = await run(['predict', 'ner', noBest, '--checkpoint', 'last', six, long]);
    expect(one.err).toBe('1 of 2 texts was longer than data.max_length (8 tokens) and was cut; its entities past the cut are not found\n');
    expect((await run(['predict', 'ner', noBest, '--checkpoint', 'last', six])).err).toBe('');
  });

  it('refuses an input file that is not UTF-8 with E_FORMAT naming the file and the line', async () => {
    const file = path.join(tmp, 'texts.txt');
    writeFileSync(file, Buffer.concat([Buffer.from('浙商银行\r\n'), Buffer.from([0x61, 0xff, 0x0a]), Buffer.from('叶老桂\n')]));
    const r = await run(['predict', 'ner', noBest, '--checkpoint', 'last', '--input', file]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(`kexue: error [E_FORMAT]: ${file}:2: invalid UTF-8\n`);
    writeFileSync(file, '\ufeff浙商银行\r\n\n叶老桂\n');
    const ok = await run(['predict', 'ner', noBest, '--checkpoint', 'last', '--input', file]);
    expect(ok.out.trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text)).toEqual(['浙商银行', '叶老桂']);
  });

  it('refuses standard input that is not UTF-8 (the kexue process)', () => {
    const bin = path.join(repoRoot, 'packages/cli/bin/kexue.js');
    const input = Buffer.concat([Buffer.from('浙商银行\n'), Buffer.from([0xfe, 0x0a])]);
    const r = spawnSync(process.execPath, [bin, 'predict', 'ner', noBest, '--checkpoint', 'last', '--input', '-'], { input, encoding: 'utf8', env: { ...process.env, KEXUE_NUM_THREADS: '1' } });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('kexue: error [E_FORMAT]: standard input:2: invalid UTF-8\n');
  });
});

describe('file-system failures', () => {
  it('a missing file is named with its cause in words, once', async () => {
    const missing = path.join(tmp, 'nope.jsonl');
    const e = await run(['eval', 'ner', evaluated, '--data', missing]);
    expect(e.code).toBe(1);
    expect(e.err).toBe(`kexue: error [E_IO]: cannot read ${missing}: no such file or directory (ENOENT)\n`);
    const p = await run(['predict', 'ner', evaluated, '--input', missing]);
    expect(p.err).toBe(`kexue: error [E_IO]: cannot read ${missing}: no such file or directory (ENOENT)\n`);
    const c = await run(['train', 'ner', '--config', path.join(tmp, 'nope.yaml')]);
    expect(c.err).toBe(`kexue: error [E_IO]: cannot read config file ${path.join(tmp, 'nope.yaml')}: no such file or directory (ENOENT)\n`);
  });

  it('a run directory on a read-only file system is EROFS, not ENOENT, and nothing is left', async (ctx) => {
    const dir = path.join(readOnlyDir(ctx), 'run');
    const r = await run(['train', 'ner', 'model.hidden=32', 'model.layers=1', 'model.heads=2', 'model.intermediate=64', 'train.steps=1', '--run-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`kexue: error \\[E_IO\\]: cannot create run directory ${dir}: read-only file system \\(EROFS\\)\\n$`));
  });
});
