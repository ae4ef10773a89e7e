import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { BertForMaskedLM, InitRng, MultiHeadAttention, convertRopeCheckpoint } from '@kexue/models';

import { expectCode, randomTensor } from '../../core-cuda/test/helpers.js';

function maxAbsDiff(a: kx.Tensor, b: kx.Tensor): number {
  const x = a.toFloat32Array();
  const y = b.toFloat32Array();
  expect(x.length).toBe(y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}

const SMALL = { kind: 'roformer', vocabSize: 50, hiddenSize: 24, numLayers: 2, numHeads: 2, intermediateSize: 32 } as const;

describe('RoPE layouts in a RoFormer', () => {
  it('an interleaved RoFormer converted to rotate-half gives the same logits (and unconverted weights do not)', () => {
    const ids = kx.tensor(Int32Array.from([3, 9, 14, 2, 7, 41, 5, 5, 30, 1, 0, 12, 8, 19, 22, 4]), [2, 8]);
    const il = new BertForMaskedLM({ ...SMALL, ropeLayout: 'interleaved' }, { seed: 3 }).eval();
    const rh = new BertForMaskedLM({ ...SMALL, ropeLayout: 'rotate-half' }, { seed: 4 }).eval();
    // q and k weights large enough that attention is far from uniform (init's are 0.02)
    const sd = Object.fromEntries(Object.entries(il.stateDict()).map(([k, w]) => [k, /self\.(query|key)\.weight$/.test(k) ? kx.mul(w, 40) : w]));
    il.loadStateDict(sd);
    const want = il.forward(ids).logits;
    rh.loadStateDict(sd);
    const unconverted = rh.forward(ids).logits;
    expect(maxAbsDiff(unconverted, want)).toBeGreaterThan(1e-3);
    const converted = convertRopeCheckpoint(sd, { from: 'interleaved', to: 'rotate-half', headSize: 12 });
    const renamed = Object.keys(sd).filter((k) => converted[k] !== sd[k]);
    expect(renamed.length).toBe(2 * 2 * 2); // query and key, weight and bias, 2 layers
    rh.loadStateDict(converted);
    expect(maxAbsDiff(rh.forward(ids).logits, want)).toBeLessThanOrEqual(1e-5);
    // and back: the round trip restores the weights exactly
    const back = convertRopeCheckpoint(converted, { from: 'rotate-half', to: 'interleaved', headSize: 12 });
    for (const k of renamed) expect(Array.from(back[k]!.toFloat32Array())).toEqual(Array.from(sd[k]!.toFloat32Array()));
    il.dispose();
    rh.dispose();
  });

  it('partial rotary: the channels past rotaryDim stay in place', () => {
    const w = kx.tensor(Float32Array.from({ length: 16 }, (_, i) => i), [8, 2]);
    const out = convertRopeCheckpoint({ 'l.attention.self.query.bias': kx.tensor([0, 1, 2, 3, 4, 5, 6, 7]), 'l.attention.self.key.weight': w }, {
      from: 'interleaved',
      to: 'rotate-half',
      headSize: 4,
      rotaryDim: 2,
    });
    expect(Array.from(out['l.attention.self.query.bias']!.toFloat32Array())).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const full = convertRopeCheckpoint({ 'l.attention.self.query.bias': kx.tensor([0, 1, 2, 3, 4, 5, 6, 7]), 'l.attention.self.key.weight': w }, {
      from: 'interleaved',
      to: 'rotate-half',
      headSize: 4,
    });
    expect(Array.from(full['l.attention.self.query.bias']!.toFloat32Array())).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(Array.from(full['l.attention.self.key.weight']!.toFloat32Array())).toEqual([0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
  });

  it('rejects rows that are not whole heads and unknown layouts (E_ARG)', () => {
    const bad = { 'a.attention.self.query.weight': kx.zeros([6, 2]) };
    expectCode(() => convertRopeCheckpoint(bad, { from: 'interleaved', to: 'rotate-half', headSize: 4 }), 'E_ARG');
    expectCode(() => convertRopeCheckpoint(bad, { from: 'neox' as 'interleaved', to: 'rotate-half', headSize: 2 }), 'E_ARG');
    expectCode(() => new BertForMaskedLM({ ...SMALL, ropeLayout: 'halves' as 'interleaved' }), 'E_ARG');
  });
});

describe('KV-cached decoding with RoPE positions', () => {
  it('a token decoded at its position over cached keys equals the full causal attention', () => {
    const mha = new MultiHeadAttention({ hidden: 16, heads: 2, rope: { layout: 'rotate-half', base: 500, rotaryDim: 4 }, rng: new InitRng(5) });
    const T = 6;
    const x = randomTensor([1, T, 16], 6);
    const full = mha.forward(x, { causal: true });
    let keys: kx.Tensor | null = null;
    let values: kx.Tensor | null = null;
    for (let t = 0; t < T; t++) {
      const xt = kx.slice(x, [0, t, 0], [1, 1, 16]);
      const pos = kx.tensor(Int32Array.from([t]), [1]);
      const { k, v } = mha.keyValueHeads(xt, pos);
      keys = keys ? kx.concat([keys, k], 2) : k;
      values = values ? kx.concat([values, v], 2) : v;
      const out = mha.attend(mha.queryHeads(xt, pos), keys, values);
      expect(maxAbsDiff(out, kx.slice(full, [0, t, 0], [1, 1, 16]))).toBeLessThanOrEqual(1e-6);
    }
    mha.dispose();
  });
});
