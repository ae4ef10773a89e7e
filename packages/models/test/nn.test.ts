import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import {
  BertModel,
  Dropout,
  FeedForward,
  InitRng,
  LayerNorm,
  Linear,
  MultiHeadAttention,
  RMSNorm,
  bertConfigFromHF,
  glorotUniform,
  lecunNormal,
  maskedMean,
  pool,
  truncatedNormal,
} from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';

const stats = (t: kx.Tensor) => {
  const a = t.toFloat32Array();
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
  return { mean, std, min: Math.min(...a), max: Math.max(...a) };
};

describe('initialisers', () => {
  it('truncated normal stays within ±2σ, lecun normal has std √(1/fanIn), glorot uniform its limit; seeded', () => {
    const t = truncatedNormal(0.02)([200, 100], new InitRng(1));
    const s = stats(t);
    expect(s.min).toBeGreaterThanOrEqual(-0.04);
    expect(s.max).toBeLessThanOrEqual(0.04);
    expect(s.std).toBeGreaterThan(0.016); // truncated: ≈ 0.88·σ
    expect(s.std).toBeLessThan(0.0185);
    const l = stats(lecunNormal()([400, 64], new InitRng(2)));
    expect(Math.abs(l.std - Math.sqrt(1 / 64)) / Math.sqrt(1 / 64)).toBeLessThan(0.03);
    const g = stats(glorotUniform()([30, 70], new InitRng(3)));
    const limit = Math.sqrt(6 / 100);
    expect(g.max).toBeLessThanOrEqual(limit);
    expect(g.min).toBeGreaterThanOrEqual(-limit);
    expect(Math.abs(g.std - limit / Math.sqrt(3)) / (limit / Math.sqrt(3))).toBeLessThan(0.05);
    const again = truncatedNormal(0.02)([200, 100], new InitRng(1));
    expect(Array.from(again.toFloat32Array())).toEqual(Array.from(t.toFloat32Array()));
    expect(() => truncatedNormal(-1)).toThrow(kx.ArgumentError);
    kx.dispose([t, again]);
  });
});

describe('layers', () => {
  it('Linear is x·Wᵀ + b with weight [out, in]; LayerNorm, RMSNorm, FeedForward (plain and gated)', () => {
    const lin = new Linear(3, 2, { rng: new InitRng(0) });
    lin.setParameter('weight', kx.tensor([1, 2, 3, 4, 5, 6], [2, 3]));
    lin.setParameter('bias', kx.tensor([0.5, -1], [2]));
    expect(Array.from(lin.forward(kx.tensor([1, 1, 1], [1, 3])).toFloat32Array())).toEqual([6.5, 14]);
    const ln = new LayerNorm(4, { eps: 1e-5 });
    const y = ln.forward(kx.tensor([1, 2, 3, 4], [1, 4])).toFloat32Array();
    expect(y.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 5);
    const rms = new RMSNorm(2).forward(kx.tensor([3, 4], [1, 2])).toFloat32Array();
    expect(rms[0]).toBeCloseTo(3 / Math.sqrt(12.5), 4);
    const ff = new FeedForward({ hidden: 4, inner: 6, gated: true, bias: false, act: 'gelu_new', rng: new InitRng(1) });
    expect(Object.keys(ff.namedParameters())).toEqual(['wi_0.weight', 'wi_1.weight', 'wo.weight']);
    expect(ff.forward(kx.ones([2, 3, 4])).shape).toEqual([2, 3, 4]);
    expect(Object.keys(new FeedForward({ hidden: 4, inner: 6, rng: new InitRng(1) }).namedParameters())).toEqual(['wi.weight', 'wi.bias', 'wo.weight', 'wo.bias']);
  });

  it('Linear in eval mode multiplies by a packed copy: the same values, repacked when the weight changes, dropped by train()', () => {
    const lin = new Linear(64, 48, { rng: new InitRng(3) });
    const x = kx.keep(kx.tensor(Float32Array.from({ length: 5 * 64 }, (_, i) => Math.sin(i)), [5, 64]));
    const plain = lin.forward(x).toFloat32Array(); // train mode: the weight itself
    const storages = () => kx.memory().storages;
    const before = storages();
    lin.eval();
    const packed = kx.tidy(() => lin.forward(x).toFloat32Array());
    expect(storages()).toBe(before + 1); // the packed copy, kept by the layer
    for (let i = 0; i < plain.length; i++) expect(packed[i]).toBeCloseTo(plain[i]!, 5);
    // an optimizer step moves the weight in place: the next eval forward packs it again
    const w = lin.weight;
    kx.tidy(() => kx.sgdUpdate(w, kx.ones([48, 64]), null, { lr: 0.01, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, first: true }));
    const moved = kx.tidy(() => lin.forward(x).toFloat32Array());
    const expected = kx.tidy(() => kx.matmul(x, w, { transB: true, bias: lin.namedParameters().bias }).toFloat32Array());
    for (let i = 0; i < moved.length; i++) expect(moved[i]).toBeCloseTo(expected[i]!, 5);
    expect(storages()).toBe(before + 1); // still one packed copy
    // a new weight tensor: packed again, the old copy freed
    kx.tidy(() => lin.setParameter('weight', kx.zeros([48, 64])));
    expect(Array.from(kx.tidy(() => lin.forward(x).toFloat32Array())).slice(0, 48)).toEqual(Array.from(lin.namedParameters().bias!.toFloat32Array()));
    expect(storages()).toBe(before + 1);
    lin.train();
    expect(storages()).toBe(before);
    lin.dispose();
    x.dispose();
  });

  it("a module's dispose runs each descendant's own dispose: nothing an eval forward packed outlives it", () => {
    const ff = new FeedForward({ hidden: 32, inner: 64, rng: new InitRng(2) });
    const before = kx.memory().storages - ff.parameters().length;
    ff.eval();
    kx.tidy(() => void ff.forward(kx.ones([3, 32])).dataSync());
    expect(kx.memory().storages).toBe(before + ff.parameters().length + 2); // wi's and wo's packed copies
    ff.dispose();
    expect(kx.memory().storages).toBe(before);
  });

  it('Dropout is active in training mode only, repeatable from its Philox seed', () => {
    const x = kx.ones([1000]);
    const d = new Dropout(0.5, new kx.Philox(3));
    const a = d.forward(x).toFloat32Array();
    const zeros = a.filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(400);
    expect(zeros).toBeLessThan(600);
    const again = new Dropout(0.5, new kx.Philox(3)).forward(x).toFloat32Array();
    expect(Array.from(again)).toEqual(Array.from(a));
    d.eval();
    expect(d.forward(x)).toBe(x);
    expect(() => new Dropout(1, new kx.Philox(0))).toThrow(kx.ArgumentError);
  });

  it('MultiHeadAttention with RoPE depends only on relative positions', () => {
    const att = new MultiHeadAttention({ hidden: 8, heads: 2, rope: true, output: 'o', rng: new InitRng(4) });
    expect(Object.keys(att.namedParameters())).toEqual(['query.weight', 'query.bias', 'key.weight', 'key.bias', 'value.weight', 'value.bias', 'o.weight', 'o.bias']);
    const x = kx.tensor(Float32Array.from({ length: 5 * 8 }, (_, i) => Math.cos(i * 0.7)), [1, 5, 8]);
    const base = att.forward(x).toFloat32Array();
    const shifted = att.forward(x, { positions: kx.tensor(new Int32Array([7, 8, 9, 10, 11]), [5]) }).toFloat32Array();
    base.forEach((v, i) => expect(shifted[i]).toBeCloseTo(v, 4));
    const noRope = new MultiHeadAttention({ hidden: 8, heads: 2, rng: new InitRng(4) });
    expect(() => noRope.forward(kx.zeros([5, 8]))).toThrow(kx.ArgumentError);
  });
});

describe('Module state dicts', () => {
  const cfg = { kind: 'bert' as const, vocabSize: 50, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxPositions: 20 };

  it('HF names, train/eval, and a strict load that names what is missing, unexpected and mis-shaped', () => {
    const m = new BertModel(cfg, { seed: 1 });
    const names = Object.keys(m.stateDict());
    expect(names).toContain('embeddings.word_embeddings.weight');
    expect(names).toContain('embeddings.position_embeddings.weight');
    expect(names).toContain('encoder.layer.1.attention.self.query.weight');
    expect(names).toContain('encoder.layer.0.attention.output.LayerNorm.bias');
    expect(names).toContain('encoder.layer.1.output.dense.weight');
    expect(names).toContain('pooler.dense.weight');
    expect(m.training).toBe(true);
    m.eval();
    expect(m.layers[1]!.attention.output.dropout.training).toBe(false);

    const other = new BertModel(cfg, { seed: 2 });
    const sd = { ...other.stateDict() };
    delete sd['pooler.dense.bias'];
    sd['encoder.layer.0.intermediate.dense.weight'] = kx.zeros([3, 3]);
    sd['extra.weight'] = kx.zeros([1]);
    sd['embeddings.position_ids'] = kx.zeros([1, 20], { dtype: 'int32' });
    const err = expectCode(() => m.loadStateDict(sd), 'E_FORMAT');
    expect(err).toBeInstanceOf(kx.FormatError);
    expect(err.message).toMatch(/missing: pooler\.dense\.bias/);
    expect(err.message).toMatch(/unexpected: extra\.weight/);
    expect(err.message).toMatch(/encoder\.layer\.0\.intermediate\.dense\.weight \(expected \[32, 16\], got \[3, 3\]\)/);
    // nothing was loaded by the failed strict load
    expect(Array.from(m.embeddings.word_embeddings.weight.toFloat32Array())).not.toEqual(Array.from(other.embeddings.word_embeddings.weight.toFloat32Array()));

    const report = m.loadStateDict(sd, { strict: false });
    expect(report.missing).toEqual(['pooler.dense.bias']);
    expect(report.unexpected).toEqual(['extra.weight']);
    expect(report.ignored).toEqual(['embeddings.position_ids']);
    expect(report.mismatched.map((x) => x.name)).toEqual(['encoder.layer.0.intermediate.dense.weight']);
    expect(Array.from(m.embeddings.word_embeddings.weight.toFloat32Array())).toEqual(Array.from(other.embeddings.word_embeddings.weight.toFloat32Array()));
    // loaded values are copies: changing the source does not change the model
    expect(m.embeddings.word_embeddings.weight).not.toBe(other.embeddings.word_embeddings.weight);
    m.dispose();
    other.dispose();
  });

  it('reads HF config.json keys', () => {
    const c = bertConfigFromHF({ model_type: 'roformer', vocab_size: 50, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, embedding_size: 8 });
    expect(c.kind).toBe('roformer');
    expect(c.embeddingSize).toBe(8);
    const m = new BertModel(c);
    expect(Object.keys(m.namedParameters())).toContain('embeddings_project.weight');
    expect(() => bertConfigFromHF({ hidden_size: 10, num_attention_heads: 3 })).toThrow(kx.FormatError);
  });
});

describe('pooling (§3.3)', () => {
  it('cls, pooler without tanh, last-avg and first-last-avg ignore padding', () => {
    const m = new BertModel({ kind: 'bert', vocabSize: 30, hiddenSize: 8, numLayers: 2, numHeads: 2, intermediateSize: 16, maxPositions: 10 }).eval();
    const ids = kx.tensor(new Int32Array([2, 5, 7, 3, 0, 0, 2, 9, 3, 0, 0, 0]), [2, 6]);
    const mask = kx.tensor(new Uint8Array([1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]), [2, 6]);
    const out = m.forward(ids, { attentionMask: mask });
    const H = 8;
    const last = out.lastHiddenState.toFloat32Array();
    const first = out.hiddenStates[0]!.toFloat32Array();
    const mean = (a: Float32Array, b: number, len: number, k: number) => {
      let s = 0;
      for (let t = 0; t < len; t++) s += a[(b * 6 + t) * H + k]!;
      return s / len;
    };
    const lastAvg = pool(out, 'last-avg', mask).toFloat32Array();
    const fla = pool(out, 'first-last-avg', mask).toFloat32Array();
    const cls = pool(out, 'cls').toFloat32Array();
    [4, 3].forEach((len, b) => {
      for (let k = 0; k < H; k++) {
        expect(lastAvg[b * H + k]).toBeCloseTo(mean(last, b, len, k), 5);
        expect(fla[b * H + k]).toBeCloseTo((mean(last, b, len, k) + mean(first, b, len, k)) / 2, 5);
        expect(cls[b * H + k]).toBeCloseTo(last[b * 6 * H + k]!, 6);
      }
    });
    const pooler = pool(out, 'pooler').toFloat32Array();
    const pooled = out.pooled!.toFloat32Array();
    pooler.forEach((v, i) => expect(Math.tanh(v)).toBeCloseTo(pooled[i]!, 5));
    expect(maskedMean(out.lastHiddenState).shape).toEqual([2, 8]);
    const ro = new BertModel({ kind: 'roformer', vocabSize: 30, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 16 });
    expect(() => pool(ro.forward(ids), 'pooler')).toThrow(kx.ArgumentError);
  });
});
