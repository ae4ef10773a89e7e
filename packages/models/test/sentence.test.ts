/**
 * Sentence vectors (ALGORITHMS.md §3) against PyTorch references made by
 * tools/golden/fx_sentence.py: the poolings of a small Hugging Face BERT checkpoint (legacy
 * LayerNorm names, pre-training heads beside the encoder) on texts batched by length; Spearman's
 * rho with ties (float64); the whitening transform for several (β, γ, k) against
 * torch.linalg.eigh in float64, a rank-deficient covariance (k above the rank: E_ARG naming it);
 * the transform's save/load, .npy files NumPy reads, and the encoder of an MLM run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import {
  BertForMaskedLM,
  POOLINGS,
  SentenceEncoder,
  Whitening,
  averageRanks,
  cosinePairs,
  mlmTask,
  npyBytes,
  pool,
  spearman,
  writeVectors,
} from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const HF_DIR = path.join(fixtures, 'sentence_hf');

interface Case {
  name: string;
  [key: string]: unknown;
}
let tensors: Record<string, kx.Tensor>;
let cases: Case[];
let tmp: string;

beforeAll(() => {
  const file = kx.io.readSafetensors(path.join(fixtures, 'sentence.safetensors'));
  tensors = file.tensors;
  cases = JSON.parse(file.metadata.cases!) as Case[];
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-sentence-'));
});
afterAll(() => {
  kx.dispose(tensors);
  rmSync(tmp, { recursive: true, force: true });
});

const caseOf = (name: string) => cases.find((c) => c.name === name)!;

/** max |a − e| over the elements (shapes must match). */
function maxDiff(actual: kx.Tensor, expected: kx.Tensor): number {
  expect(actual.shape).toEqual(expected.shape);
  const a = actual.toFloat32Array();
  const e = expected.toFloat32Array();
  let m = 0;
  for (let i = 0; i < e.length; i++) m = Math.max(m, Math.abs(a[i]! - e[i]!));
  return m;
}

describe('SentenceEncoder', () => {
  it('pools a Hugging Face checkpoint as PyTorch does (cls, pooler, last-avg, first-last-avg), in input order', () => {
    const { texts, ids } = caseOf('pool') as unknown as { texts: string[]; ids: number[][] };
    for (const pooling of POOLINGS) {
      // batches of 3 sorted by length: other paddings than the reference's one batch
      const enc = SentenceEncoder.fromPretrained(HF_DIR, { pooling, batchSize: 3 });
      try {
        expect(texts.map((t) => enc.tokenizer.encode(t).ids)).toEqual(ids);
        const v = enc.encode(texts);
        expect(v.dtype).toBe('float32');
        expect(maxDiff(v, tensors[`pool.${pooling}`]!), pooling).toBeLessThan(1e-5);
        v.dispose();
      } finally {
        enc.dispose();
      }
    }
  });

  it('respects the padding mask: a text alone and in a padded batch give one vector', () => {
    const { texts } = caseOf('pool') as unknown as { texts: string[] };
    const enc = SentenceEncoder.fromPretrained(HF_DIR, { pooling: 'last-avg', batchSize: 16 });
    try {
      const batch = enc.encode(texts);
      const alone = kx.concat(texts.map((t) => enc.encode([t])));
      expect(maxDiff(batch, alone)).toBeLessThan(1e-5);
      expect(enc.encode([]).shape).toEqual([0, 32]);
    } finally {
      enc.dispose();
    }
  });

  it('refuses an unknown pooling and a maxLength below 3', () => {
    const { model, tokenizer } = SentenceEncoder.fromPretrained(HF_DIR);
    expectCode(() => new SentenceEncoder(model, tokenizer, { pooling: 'max' as never }), 'E_ARG');
    expectCode(() => new SentenceEncoder(model, tokenizer, { maxLength: 2 }), 'E_ARG');
    model.dispose();
  });

  it("encodes with an MLM run's encoder (the run's weights, not a fresh initialisation)", async () => {
    const run = path.join(tmp, 'mlm');
    const dev = path.join(tmp, 'dev.txt');
    writeFileSync(dev, '我爱北京天安门\n今天天气很好\n');
    await mlmTask.train({
      values: { model: { hidden: 32, layers: 2, heads: 2, intermediate: 64 }, data: { dev }, train: { batch_size: 8, steps: 2, threads: 1 } },
      runDir: run,
    });
    const texts = ['我爱北京', '今天天气很好啊'];
    const enc = SentenceEncoder.fromRun(run, { pooling: 'first-last-avg' });
    const opened = SentenceEncoder.open(run);
    expect(opened.model.config.kind).toBe(enc.model.config.kind);
    opened.dispose();
    // an MLM encoder has no pooler
    expectCode(() => SentenceEncoder.fromRun(run, { pooling: 'pooler' }), 'E_ARG');
    const got = enc.encode(texts);
    // the same checkpoint through the MLM model: its encoder's outputs, pooled one text at a time
    const dir = path.join(run, JSON.parse(readFileSync(path.join(run, 'checkpoints.json'), 'utf8')).best.dir as string);
    const mlm = BertForMaskedLM.fromPretrained({ config: { ...enc.model.config }, weights: path.join(dir, 'model.safetensors') }, { partial: true });
    const expected = kx.concat(
      texts.map((t) => {
        const ids = enc.tokenizer.encode(t).ids;
        return pool(mlm.encoder.forward(kx.tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'int32' })), 'first-last-avg');
      }),
    );
    expect(maxDiff(got, expected)).toBeLessThan(1e-5);
    enc.dispose();
    mlm.dispose();
  });
});

describe('spearman', () => {
  it('matches the float64 reference with tied scores and labels', () => {
    for (const name of ['binary', 'graded', 'heavy_ties']) {
      const x = tensors[`spearman.${name}.x`]!.toFloat32Array();
      const y = tensors[`spearman.${name}.y`]!.toFloat32Array();
      expect(Math.abs(spearman(x, y) - (caseOf(`spearman.${name}`).rho as number)), name).toBeLessThan(1e-12);
    }
  });

  it('averages the ranks of ties; ±1 for monotone samples; NaN for a constant one; checks its input', () => {
    expect([...averageRanks([3, 1, 3, 2, 3])]).toEqual([4, 1, 4, 2, 4]);
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 1000])).toBeCloseTo(1, 15);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 15);
    expect(spearman([1, 2, 3], [5, 5, 5])).toBeNaN();
    expectCode(() => spearman([1, 2], [1]), 'E_SHAPE');
    expectCode(() => spearman([1], [1]), 'E_ARG');
    expectCode(() => spearman([1, NaN], [1, 2]), 'E_ARG');
  });
});

describe('Whitening', () => {
  it('matches torch.linalg (float64) for β, γ and k: kernel, bias and the transformed rows', () => {
    const x = tensors['whiten.x']!;
    for (let i = 0; i < 6; i++) {
      const { beta, gamma, k } = caseOf(`whiten.${i}`) as unknown as { beta: number; gamma: number; k: number };
      const w = Whitening.fit(x, { beta, gamma, k });
      const label = `β=${beta} γ=${gamma} k=${k}`;
      expect([w.k, w.rank, w.beta, w.gamma]).toEqual([k, 12, beta, gamma]);
      expect(maxDiff(w.kernel, tensors[`whiten.${i}.kernel`]!), label).toBeLessThan(1e-4);
      expect(maxDiff(w.bias, tensors[`whiten.${i}.bias`]!), label).toBeLessThan(1e-4);
      const y = w.apply(x);
      expect(maxDiff(y, tensors[`whiten.${i}.y`]!), label).toBeLessThan(1e-4);
      y.dispose();
      w.dispose();
    }
  });

  it('whitens to the identity covariance with β = γ = 1 and leaves cosines alone with β = γ = 0 (k = D)', () => {
    const x = tensors['whiten.x']!;
    const w = Whitening.fit(x);
    const y = w.apply(x);
    const { cov, mean } = kx.linalg.covariance(y);
    const c = cov.toFloat32Array();
    for (let i = 0; i < 12; i++) for (let j = 0; j < 12; j++) expect(Math.abs(c[i * 12 + j]! - (i === j ? 1 : 0))).toBeLessThan(1e-4);
    for (const m of mean.toFloat32Array()) expect(Math.abs(m)).toBeLessThan(1e-4);
    const r = Whitening.fit(x, { beta: 0, gamma: 0 });
    const half = (t: kx.Tensor, at: number) => kx.slice(t, [at, 0], [40, -1]);
    const raw = cosinePairs(half(x, 0), half(x, 40));
    const rotated = r.apply(x);
    const turned = cosinePairs(half(rotated, 0), half(rotated, 40));
    for (let i = 0; i < 40; i++) expect(Math.abs(turned[i]! - raw[i]!)).toBeLessThan(1e-5);
    kx.dispose([w.kernel, w.bias, y, cov, mean, r.kernel, r.bias, rotated]);
  });

  it('keeps the rank of a rank-deficient covariance; k above it is E_ARG naming the rank', () => {
    const x = tensors['rank.x']!;
    for (const i of [0, 1]) {
      const { beta, rank } = caseOf(`rank.${i}`) as unknown as { beta: number; rank: number };
      const w = Whitening.fit(x, { beta });
      expect([w.rank, w.k]).toEqual([rank, rank]);
      expect(maxDiff(w.kernel, tensors[`rank.${i}.kernel`]!)).toBeLessThan(1e-4);
      const y = w.apply(x);
      expect(maxDiff(y, tensors[`rank.${i}.y`]!)).toBeLessThan(1e-4);
      for (const v of y.toFloat32Array()) expect(Number.isFinite(v)).toBe(true);
      const err = expectCode(() => Whitening.fit(x, { beta, k: rank + 1 }), 'E_ARG');
      expect(err.message).toMatch(new RegExp(`k = ${rank + 1} exceeds the numerical rank ${rank}`));
      expectCode(() => w.truncate(rank + 1), 'E_ARG');
      kx.dispose([y]);
      w.dispose();
    }
    expectCode(() => Whitening.fit(x, { k: 0 }), 'E_ARG');
    expectCode(() => Whitening.fit(x, { gamma: NaN }), 'E_ARG');
    expectCode(() => Whitening.fit(kx.tensor([1, 2], [2])), 'E_SHAPE');
  });

  it('truncates to the first k columns of the full transform', () => {
    const x = tensors['whiten.x']!;
    const full = Whitening.fit(x);
    const cut = full.truncate(6);
    expect(maxDiff(cut.kernel, tensors['whiten.1.kernel']!)).toBeLessThan(1e-4);
    expect(maxDiff(cut.bias, tensors['whiten.1.bias']!)).toBeLessThan(1e-4);
    full.dispose();
    cut.dispose();
  });

  it('saves and loads as safetensors with β, γ, k and the pooling in the metadata', async () => {
    const x = tensors['whiten.x']!;
    const w = Whitening.fit(x, { beta: 0.5, gamma: 0.5, k: 8, pooling: 'first-last-avg' });
    const file = path.join(tmp, 'whitening.safetensors');
    await w.save(file);
    expect(kx.io.readSafetensorsHeader(file).metadata).toEqual({ beta: '0.5', gamma: '0.5', k: '8', rank: '12', pooling: 'first-last-avg' });
    const back = Whitening.load(file);
    expect([back.beta, back.gamma, back.k, back.rank, back.pooling]).toEqual([0.5, 0.5, 8, 12, 'first-last-avg']);
    const [a, b] = [w.apply(x), back.apply(x)];
    expect(maxDiff(a, b)).toBe(0);
    const bad = path.join(tmp, 'bad.safetensors');
    await kx.io.saveSafetensors(bad, { kernel: w.kernel }, { k: '8' });
    expectCode(() => Whitening.load(bad), 'E_FORMAT');
    expectCode(() => back.apply(kx.zeros([2, 5])), 'E_SHAPE');
    kx.dispose([a, b]);
    w.dispose();
    back.dispose();
  });
});

describe('writeVectors', () => {
  const numpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

  it('writes .npy version 1.0 (64-byte aligned header) and .safetensors', async () => {
    const m = kx.tensor(Float32Array.from({ length: 15 }, (_, i) => i / 7 - 1), [5, 3]);
    const bytes = npyBytes(m.toFloat32Array(), m.shape);
    const headerLength = new DataView(bytes.buffer).getUint16(8, true);
    expect((10 + headerLength) % 64).toBe(0);
    expect(Buffer.from(bytes.subarray(10, 10 + headerLength)).toString('latin1')).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(5, 3\), \} *\n$/);
    await writeVectors(path.join(tmp, 'v.npy'), m);
    expect(readFileSync(path.join(tmp, 'v.npy'))).toEqual(Buffer.from(bytes));
    await writeVectors(path.join(tmp, 'v.safetensors'), m, { pooling: 'cls' });
    const back = kx.io.readSafetensors(path.join(tmp, 'v.safetensors'));
    expect(back.metadata).toEqual({ pooling: 'cls' });
    expect(maxDiff(back.tensors.vectors!, m)).toBe(0);
    await expect(writeVectors(path.join(tmp, 'v.txt'), m)).rejects.toMatchObject({ code: 'E_ARG' });
    await expect(writeVectors(path.join(tmp, 'v.npy'), kx.tensor([1, 2], [2], { dtype: 'int32' }))).rejects.toMatchObject({ code: 'E_DTYPE' });
  });

  it.runIf(numpy)('writes .npy files NumPy reads back exactly', async () => {
    const values = Float32Array.from({ length: 12 }, (_, i) => Math.fround(Math.sin(i) * 3));
    await writeVectors(path.join(tmp, 'n.npy'), kx.tensor(values, [4, 3]));
    await writeVectors(path.join(tmp, 'one.npy'), kx.tensor(values, [12]));
    const r = spawnSync('/usr/bin/python3', ['-c', `import numpy, json; a = numpy.load('${path.join(tmp, 'n.npy')}'); b = numpy.load('${path.join(tmp, 'one.npy')}'); print(json.dumps([str(a.dtype), a.shape, a.ravel().tolist(), b.shape]))`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const [dtype, shape, data, shape1] = JSON.parse(r.stdout) as [string, number[], number[], number[]];
    expect([dtype, shape, shape1]).toEqual(['float32', [4, 3], [12]]);
    expect(Float32Array.from(data)).toEqual(values);
  });
});
