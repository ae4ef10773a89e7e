import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { BertModel, InitRng, MultiHeadAttention, encoderArch, encoderConfig, eluPlusOne, linearAttention, type ModelConfig } from '@kexue/models';

import { expectCode, expectGradOk, maxRelError, randomTensor } from '../../core-cuda/test/helpers.js';

/** The §6.1 formula with explicit sums in float64: φ = elu + 1, interleaved RoPE (base 10000) on φ in the numerator. */
function reference(q: kx.Tensor, k: kx.Tensor, v: kx.Tensor, o: { causal: boolean; rope: boolean; keys?: number[] }): Float32Array {
  const [B, H, T, d] = q.shape as [number, number, number, number];
  const e = v.shape[3]!;
  const [qs, ks, vs] = [q, k, v].map((t) => t.toFloat32Array());
  const phi = (x: number) => (x > 0 ? x + 1 : Math.exp(x));
  const rot = (x: number[], m: number) => {
    if (!o.rope) return x;
    const y = x.slice();
    for (let i = 0; i < d / 2; i++) {
      const a = m * Math.fround(10000 ** ((-2 * i) / d));
      y[2 * i] = x[2 * i]! * Math.cos(a) - x[2 * i + 1]! * Math.sin(a);
      y[2 * i + 1] = x[2 * i + 1]! * Math.cos(a) + x[2 * i]! * Math.sin(a);
    }
    return y;
  };
  const out = new Float32Array(B * H * T * e);
  for (let bh = 0; bh < B * H; bh++) {
    const row = (a: Float32Array, t: number, n: number) => Array.from(a.slice((bh * T + t) * n, (bh * T + t + 1) * n));
    for (let i = 0; i < T; i++) {
      const fq = row(qs, i, d).map(phi);
      const rq = rot(fq, i);
      const num = new Array<number>(e).fill(0);
      let den = 0;
      for (let j = 0; j < (o.causal ? i + 1 : T); j++) {
        if (o.keys && !o.keys.includes(j)) continue;
        const fk = row(ks, j, d).map(phi);
        const rk = rot(fk, j);
        const s = rq.reduce((acc, x, c) => acc + x * rk[c]!, 0);
        den += fq.reduce((acc, x, c) => acc + x * fk[c]!, 0);
        row(vs, j, e).forEach((x, c) => (num[c]! += s * x));
      }
      num.forEach((x, c) => (out[(bh * T + i) * e + c] = x / den));
    }
  }
  return out;
}

describe('linear attention with RoPE in the numerator (§6.1)', () => {
  const q = randomTensor([2, 2, 7, 4], 1);
  const k = randomTensor([2, 2, 7, 4], 2);
  const v = randomTensor([2, 2, 7, 3], 3);

  for (const causal of [false, true]) {
    for (const rope of [false, true]) {
      for (const chunk of [3, 64]) {
        it(`causal ${causal}, rope ${rope}, chunk ${chunk}: the explicit sums`, () => {
          const y = linearAttention(q, k, v, { causal, chunk, rope: rope ? {} : null });
          expect(y.shape).toEqual([2, 2, 7, 3]);
          expect(maxRelError(y, reference(q, k, v, { causal, rope }))).toBeLessThan(2e-6);
        });
      }
    }
  }

  it('elu + 1 is positive and its gradient is 1 or exp(x)', () => {
    const x = kx.tensor([-3, -0.5, 0.25, 2]);
    expect(Array.from(eluPlusOne(x).toFloat32Array()).map((z) => +z.toFixed(6))).toEqual([Math.exp(-3), Math.exp(-0.5), 1.25, 3].map((z) => +z.toFixed(6)));
    expectGradOk((xx) => kx.sum(eluPlusOne(xx!)), [kx.tensor([-3, -0.5, 0.25, 2])]);
  });

  it('a key padding mask hides the padded keys', () => {
    const mask = kx.tensor(Uint8Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1]), [2, 1, 1, 7]);
    const y = linearAttention(q, k, v, { rope: {}, mask }).toFloat32Array();
    const want0 = reference(q, k, v, { causal: false, rope: true, keys: [0, 1, 2, 3, 4] });
    const want1 = reference(q, k, v, { causal: false, rope: true });
    const half = 2 * 7 * 3;
    expect(maxRelError(y.slice(0, half), want0.slice(0, half))).toBeLessThan(2e-6);
    expect(maxRelError(y.slice(half), want1.slice(half))).toBeLessThan(2e-6);
  });

  it('gradients in q, k, v by finite differences (causal, chunked, RoPE)', () => {
    const w = randomTensor([2, 2, 7, 3], 4);
    expectGradOk((a, b, c) => kx.sum(kx.mul(linearAttention(a!, b!, c!, { causal: true, chunk: 3, rope: { layout: 'rotate-half' } }), w)), [q, k, v], {
      eps: 1e-2,
      atol: 2e-3,
      rtol: 2e-3,
    });
  });

  it('an encoder with linear attention runs forward and backward; attend() refuses it', () => {
    const model = new BertModel({ kind: 'roformer', vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, attention: 'linear' });
    const ids = kx.tensor(Int32Array.from([1, 5, 9, 2, 3, 7, 0, 0]), [2, 4]);
    const attentionMask = kx.tensor(Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 0]), [2, 4]);
    const { value, grads } = kx.valueAndGrad(() => kx.sum(kx.pow(model.forward(ids, { attentionMask }).lastHiddenState, 2)), model.parameters());
    expect(Number.isFinite(value.item())).toBe(true);
    expect(grads.some((g: kx.Tensor | null) => g !== null && kx.sum(kx.pow(g, 2)).item() > 0)).toBe(true);
    const mha = new MultiHeadAttention({ hidden: 8, heads: 2, attention: 'linear', rope: true, rng: new InitRng(1) });
    const x = randomTensor([1, 3, 8], 5);
    expectCode(() => mha.attend(mha.queryHeads(x), mha.keyValueHeads(x).k, mha.keyValueHeads(x).v), 'E_ARG');
    expectCode(() => mha.forward(x, { bias: kx.zeros([1, 2, 3, 3]) }), 'E_ARG');
    model.dispose();
  });

  it('errors: non-padding masks, causal with Tq ≠ Tk, mismatched shapes, bad chunk (E_ARG)', () => {
    expectCode(() => linearAttention(q, k, v, { mask: kx.ones([2, 1, 7, 7], { dtype: 'uint8' }) }), 'E_ARG');
    const q3 = randomTensor([2, 2, 3, 4], 6);
    expectCode(() => linearAttention(q3, k, v, { causal: true }), 'E_ARG');
    expectCode(() => linearAttention(q, k, randomTensor([2, 2, 6, 3], 7)), 'E_ARG');
    expectCode(() => linearAttention(q, k, v, { causal: true, chunk: 0 }), 'E_ARG');
    expectCode(() => new MultiHeadAttention({ hidden: 8, heads: 2, attention: 'performer' as 'linear', rng: new InitRng(1) }), 'E_ARG');
  });

  it("the task key model.attention reaches the encoder, and the architecture record names it only when 'linear'", () => {
    const base: ModelConfig = { kind: 'roformer', attention: 'softmax', hidden: 16, layers: 1, heads: 2, intermediate: 32, dropout: 0.1, vocab: '', max_positions: 512 };
    expect(encoderConfig(base, 40).attention).toBe('softmax');
    expect(encoderArch(base, 40)).not.toHaveProperty('model.attention');
    const linear = { ...base, attention: 'linear' as const };
    expect(encoderConfig(linear, 40).attention).toBe('linear');
    expect(encoderArch(linear, 40)['model.attention']).toBe('linear');
  });
});
