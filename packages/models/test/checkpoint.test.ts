/**
 * Checkpoints verify what they hold: each records the size and SHA-256 of its files
 * (checksums.json), and every path that reads one (resume, `init`, NerPredictor and `kexue eval
 * ner`, `kexue eval mlm`) refuses a file whose bytes changed, with E_FORMAT naming it, while a
 * checkpoint written before checksums existed still loads. Weights holding NaN or ±Infinity are
 * refused, naming the first bad tensor. And `kexue eval ner --per-type` reports the model's types
 * and flags a type of the data the model does not know.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import {
  CHECKSUMS_FILE,
  MODEL_FILE,
  NerPredictor,
  OPTIMIZER_FILE,
  TRAINER_FILE,
  checkpointDir,
  mlmTask,
  nerTask,
  readChecksums,
  readTrainerState,
  sha256File,
  verifyCheckpoint,
  type ChecksumManifest,
  type ConfigValues,
  type MlmConfig,
  type NerConfig,
} from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectCode, expectCodeAsync } from '../../core-cuda/test/helpers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DEMO = path.join(repoRoot, 'packages/models/demo/cluener');
const TINY: ConfigValues<NerConfig> = {
  model: { hidden: 32, layers: 2, heads: 2, intermediate: 64 },
  head: { size: 16 },
  optim: { lr: 5e-3 },
  train: { batch_size: 8, steps: 2, stop_at: 1, threads: 1 },
};

let tmp: string;
let dev: string;
/** A NER run stopped after its first update: its last checkpoint (step 1) is the only one. */
let base: string;
let n = 0;

/** A copy of the base run to damage. */
function copyRun(): string {
  const dir = path.join(tmp, `run-${n++}`);
  cpSync(base, dir, { recursive: true });
  return dir;
}

/** XORs one byte of a file. */
function flip(file: string, at: number, mask = 0x01): void {
  const bytes = readFileSync(file);
  bytes[at]! ^= mask;
  writeFileSync(file, bytes);
}

/** The absolute offset of a byte in the middle of a tensor's data in a safetensors file. */
function inData(file: string): number {
  const e = kx.io.readSafetensorsHeader(file).entries.reduce((a, b) => (b.end - b.begin > a.end - a.begin ? b : a));
  return e.begin + Math.floor((e.end - e.begin) / 8) * 4; // the low byte of a float32: still finite when flipped
}

/** Rewrites the checksums of a checkpoint after a deliberate change (so only that change is seen). */
function rehash(dir: string): void {
  const m = readChecksums(dir)!;
  for (const name of Object.keys(m.files)) m.files[name] = sha256File(path.join(dir, name));
  writeFileSync(path.join(dir, CHECKSUMS_FILE), JSON.stringify(m));
}

const corruptMessage = (file: string) => new RegExp(`checkpoint .*${file.replace('.', '\\.')} is corrupt: its SHA-256 does not match the one recorded when it was written`);

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-ckpt-'));
  // 20 dev records, the last with an entity of a type the training data does not have
  const lines = readFileSync(path.join(DEMO, 'dev.jsonl'), 'utf8').trim().split('\n').slice(0, 19);
  lines.push(JSON.stringify({ text: '我在玩原神和星穹铁道', label: { software: { 原神: [[3, 4]], 星穹铁道: [[6, 9]] } } }));
  dev = path.join(tmp, 'dev.jsonl');
  writeFileSync(dev, `${lines.join('\n')}\n`);
  base = path.join(tmp, 'base');
  await nerTask.train({ values: { ...TINY, data: { dev } }, runDir: base });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('checksummed checkpoints', () => {
  it('record the size and SHA-256 of every file in checksums.json, written before the rename', () => {
    const dir = checkpointDir(base, 'last');
    const m = JSON.parse(readFileSync(path.join(dir, CHECKSUMS_FILE), 'utf8')) as ChecksumManifest;
    expect(m.algorithm).toBe('sha256');
    expect(Object.keys(m.files)).toEqual(['config.json', MODEL_FILE, OPTIMIZER_FILE, TRAINER_FILE, 'vocab.txt']);
    for (const [name, rec] of Object.entries(m.files)) {
      const bytes = readFileSync(path.join(dir, name));
      expect(rec).toEqual({ bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    }
    expect(verifyCheckpoint(dir)).toBe(true);
  });

  it('a flipped byte inside a tensor of model.safetensors: eval, predict, resume and init refuse it, naming the file', async () => {
    const run = copyRun();
    const file = path.join(checkpointDir(run, 'last'), MODEL_FILE);
    flip(file, inData(file));
    // the header is intact and the shapes fit: only the checksum tells
    expect(kx.io.readSafetensorsHeader(file).entries.length).toBeGreaterThan(0);
    expect(expectCode(() => NerPredictor.load(run), 'E_FORMAT').message).toMatch(corruptMessage(MODEL_FILE));
    const out: string[] = [];
    const io = { cwd: tmp, write: (t: string) => void out.push(t), warn: () => undefined, readStdin: async () => '' };
    const evalErr = await expectCodeAsync(nerTask.commands.eval!.run(run, { options: { checkpoint: 'best', device: 'cpu', data: dev }, positionals: {} }, io), 'E_FORMAT');
    expect(evalErr.message).toMatch(corruptMessage(MODEL_FILE));
    expect(out).toEqual([]);
    expect((await expectCodeAsync(nerTask.train({ resume: run }), 'E_FORMAT')).message).toMatch(corruptMessage(MODEL_FILE));
    const fresh = path.join(tmp, 'from-corrupt');
    const init = await expectCodeAsync(nerTask.train({ values: { ...TINY, init: run }, runDir: fresh }), 'E_FORMAT');
    expect(init.message).toMatch(corruptMessage(MODEL_FILE));
    expect(existsSync(fresh)).toBe(false);
    // without its checksums the damaged file loads: nothing else could have told
    rmSync(path.join(path.dirname(file), CHECKSUMS_FILE));
    NerPredictor.load(run).dispose();
  });

  it('a damaged header or a truncated file is named as corrupt too', () => {
    const run = copyRun();
    const file = path.join(checkpointDir(run, 'last'), MODEL_FILE);
    flip(file, 10, 0x80); // inside the header's JSON: no longer UTF-8
    expect(expectCode(() => NerPredictor.load(run), 'E_FORMAT').message).toMatch(corruptMessage(MODEL_FILE));
    const short = copyRun();
    const cut = path.join(checkpointDir(short, 'last'), MODEL_FILE);
    const size = readFileSync(cut).length;
    truncateSync(cut, size - 4);
    expect(expectCode(() => NerPredictor.load(short), 'E_FORMAT').message).toMatch(
      new RegExp(`model\\.safetensors is corrupt: it has ${size - 4} bytes, ${size} were recorded when it was written`),
    );
  });

  it('a corrupt optimizer state or trainer state stops a resume; eval, which does not read them, still works', async () => {
    const run = copyRun();
    const dir = checkpointDir(run, 'last');
    const opt = path.join(dir, OPTIMIZER_FILE);
    flip(opt, inData(opt));
    expect((await expectCodeAsync(nerTask.train({ resume: run }), 'E_FORMAT')).message).toMatch(corruptMessage(OPTIMIZER_FILE));
    NerPredictor.load(run).dispose();
    const trainer = copyRun();
    const tdir = checkpointDir(trainer, 'last');
    const text = readFileSync(path.join(tdir, TRAINER_FILE), 'utf8');
    writeFileSync(path.join(tdir, TRAINER_FILE), text.replace('"step": 1', '"step": 7'));
    expect(expectCode(() => readTrainerState(tdir), 'E_FORMAT').message).toMatch(corruptMessage(TRAINER_FILE));
  });

  it('a changed vocabulary is caught when the checkpoint is looked up', () => {
    const run = copyRun();
    const vocab = path.join(checkpointDir(run, 'last'), 'vocab.txt');
    flip(vocab, 200);
    expect(expectCode(() => NerPredictor.load(run), 'E_FORMAT').message).toMatch(corruptMessage('vocab.txt'));
  });

  it('a checkpoint written before checksums existed loads and resumes unverified', async () => {
    const run = copyRun();
    const dir = checkpointDir(run, 'last');
    rmSync(path.join(dir, CHECKSUMS_FILE));
    expect(readChecksums(dir)).toBeNull();
    expect(verifyCheckpoint(dir)).toBe(false);
    NerPredictor.load(run).dispose();
    const r = await nerTask.train({ resume: run });
    expect(r.step).toBe(2);
    // the checkpoints it writes now carry checksums
    expect(verifyCheckpoint(checkpointDir(run, 'last'))).toBe(true);
  });

  it('a malformed checksums.json is E_FORMAT naming it', () => {
    const run = copyRun();
    const dir = checkpointDir(base, 'last').replace(base, run);
    writeFileSync(path.join(dir, CHECKSUMS_FILE), '{"algorithm": "md5", "files": {}}');
    expect(expectCode(() => checkpointDir(run, 'last'), 'E_FORMAT').message).toMatch(/checksums.*checksums\.json are malformed/);
  });
});

describe('non-finite weights', () => {
  it('are refused by eval, predict and resume with E_FORMAT naming the file and the first bad tensor', async () => {
    const run = copyRun();
    const dir = checkpointDir(run, 'last');
    const file = path.join(dir, MODEL_FILE);
    const { tensors, metadata } = kx.io.readSafetensors(file);
    const names = Object.keys(tensors);
    const victim = names[Math.floor(names.length / 2)]!;
    const values = tensors[victim]!.toFloat32Array();
    values[3] = NaN;
    const later = names[names.length - 1]!;
    const lastValues = tensors[later]!.toFloat32Array();
    lastValues[0] = Infinity;
    const bad = { ...tensors, [victim]: kx.tensor(values, tensors[victim]!.shape), [later]: kx.tensor(lastValues, tensors[later]!.shape) };
    await kx.io.saveSafetensors(file, bad, metadata);
    kx.dispose([...Object.values(tensors), bad[victim]!, bad[later]!]);
    rehash(dir); // a well-written checkpoint of a diverged run: the checksums agree
    const message = new RegExp(`checkpoint .*model\\.safetensors holds weights that are not finite: tensor '${victim.replace(/\./g, '\\.')}' has NaN at element 3`);
    expect(expectCode(() => NerPredictor.load(run), 'E_FORMAT').message).toMatch(message);
    const io = { cwd: tmp, write: () => undefined, warn: () => undefined, readStdin: async () => '' };
    expect((await expectCodeAsync(nerTask.commands.predict!.run(run, { options: { checkpoint: 'best', device: 'cpu', threshold: 0 }, positionals: { texts: ['浙商银行'] } }, io), 'E_FORMAT')).message).toMatch(message);
    expect((await expectCodeAsync(nerTask.train({ resume: run }), 'E_FORMAT')).message).toMatch(message);
  });
});

describe('kexue eval mlm', () => {
  it('refuses a corrupt checkpoint', async () => {
    const mlm = path.join(tmp, 'mlm');
    const values: ConfigValues<MlmConfig> = { model: { hidden: 32, layers: 2, heads: 2, intermediate: 64 }, train: { batch_size: 8, steps: 1, threads: 1 }, data: { dev } };
    await mlmTask.train({ values, runDir: mlm });
    const out: string[] = [];
    const io = { cwd: tmp, write: (t: string) => void out.push(t), warn: () => undefined, readStdin: async () => '' };
    const options = { checkpoint: 'best', device: 'cpu', data: dev };
    await mlmTask.commands.eval!.run(mlm, { options, positionals: {} }, io);
    expect(out).toHaveLength(1);
    const file = path.join(checkpointDir(mlm, 'best'), MODEL_FILE);
    flip(file, inData(file));
    expect((await expectCodeAsync(mlmTask.commands.eval!.run(mlm, { options, positionals: {} }, io), 'E_FORMAT')).message).toMatch(corruptMessage(MODEL_FILE));
  });
});

describe('kexue eval ner --per-type', () => {
  it("prints every type of the model, and flags one of the data it does not know, whose entities count as missed", async () => {
    const out: string[] = [];
    const io = { cwd: tmp, write: (t: string) => void out.push(t), warn: () => undefined, readStdin: async () => '' };
    await nerTask.commands.eval!.run(base, { options: { checkpoint: 'best', device: 'cpu', data: dev, perType: true }, positionals: {} }, io);
    const [overall, ...rows] = out.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const predictor = NerPredictor.load(base);
    const labels = predictor.labels;
    predictor.dispose();
    expect(labels).not.toContain('software');
    expect(rows.map((r) => r.type)).toEqual([...labels, 'software'].sort());
    const software = rows.find((r) => r.type === 'software')!;
    expect(software).toEqual({ type: 'software', precision: 0, recall: 0, f1: 0, correct: 0, predicted: 0, gold: 2, unknown: true });
    for (const r of rows) if (r.type !== 'software') expect(r.unknown).toBeUndefined();
    // the unknown type's gold entities are in the overall count
    expect(overall!.gold).toBe(rows.reduce((s, r) => s + (r.gold as number), 0));
    for (const r of [overall!, ...rows]) for (const k of ['precision', 'recall', 'f1']) expect(r.correct === 0 ? r[k] === 0 : (r[k] as number) > 0).toBe(true);
  });
});
