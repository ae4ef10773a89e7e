import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import {
  EfficientGlobalPointer,
  GlobalPointer,
  decodeSpans,
  globalPointerLoss,
  recognize,
  sparseGlobalPointerLoss,
  spansToEntities,
} from '@kexue/models';

import { loadModelFixture, relError } from './nn_helpers.js';

describe('GlobalPointer head vs PyTorch', () => {
  const fx = loadModelFixture('gp_head');
  afterAll(() => fx.dispose());
  const { hidden: x, attention_mask: mask, labels } = fx.inputs;
  const head = new GlobalPointer({ hidden: x!.shape[2]!, heads: fx.meta.heads, headSize: fx.meta.headSize });
  const report = head.loadStateDict(fx.weights, { prefix: 'global_pointer.' });

  it('loads dense.weight/bias under a prefix', () => {
    expect(report.loaded.sort()).toEqual(['global_pointer.dense.bias', 'global_pointer.dense.weight']);
  });

  it('scores, loss and gradients match ([q | k] per head, RoPE, 1/√d, masks)', () => {
    const s = head.forward(x!, mask!);
    expect(relError(s, fx.outputs.scores!)).toBeLessThanOrEqual(1e-4);
    const { value, grads } = kx.valueAndGrad(() => globalPointerLoss(head.forward(x!, mask!), labels!), head.namedParameters());
    expect(Math.abs(value.item() - fx.meta.loss) / fx.meta.loss).toBeLessThanOrEqual(1e-5);
    expect(relError(grads['dense.weight']!, fx.grads['global_pointer.dense.weight']!)).toBeLessThanOrEqual(1e-3);
    expect(relError(grads['dense.bias']!, fx.grads['global_pointer.dense.bias']!)).toBeLessThanOrEqual(1e-3);
    kx.dispose([s, value, grads]);
  });

  it('the sparse loss equals the dense one up to the (0, 0) span the sparse form leaves out', () => {
    kx.tidy(() => {
      const s = head.forward(x!, mask!);
      const [B, H, n] = s.shape as [number, number, number];
      const spans = fx.meta.spans as [number, number, number, number][];
      const P = 4;
      const idx = new Int32Array(B * H * P);
      const fill = new Array(B * H).fill(0);
      for (const [b, h, i, j] of spans) {
        const at = b * H + h;
        idx[at * P + fill[at]++] = i * n + j;
      }
      // the dense loss with the (0, 0) span masked, for each row; the sparse loss sums heads, means batch
      const raw = s.toFloat32Array();
      for (let r = 0; r < B * H; r++) raw[r * n * n] = -Infinity;
      const dense = globalPointerLoss(kx.tensor(raw, s.shape), labels!).item() * H;
      const sparse = sparseGlobalPointerLoss(s, kx.tensor(idx, [B, H, P])).item();
      expect(Math.abs(sparse - dense) / dense).toBeLessThan(1e-5);
    });
  });
});

describe('Efficient GlobalPointer', () => {
  it('has 4d + … parameters per extra type and masks padding and the lower triangle', () => {
    const a = new EfficientGlobalPointer({ hidden: 16, heads: 2, headSize: 8, rng: 1 });
    const b = new EfficientGlobalPointer({ hidden: 16, heads: 3, headSize: 8, rng: 1 });
    // one more type: q_dense gains 2 rows of 2d weights and 2 biases = 4d + 2
    expect(b.parameterCount() - a.parameterCount()).toBe(4 * 8 + 2);
    const x = kx.tensor(Float32Array.from({ length: 2 * 5 * 16 }, (_, i) => Math.sin(i)), [2, 5, 16]);
    const mask = kx.tensor(new Uint8Array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]), [2, 5]);
    const s = a.forward(x, mask).toFloat32Array();
    for (let bi = 0; bi < 2; bi++)
      for (let h = 0; h < 2; h++)
        for (let i = 0; i < 5; i++)
          for (let j = 0; j < 5; j++) {
            const v = s[((bi * 2 + h) * 5 + i) * 5 + j]!;
            const real = bi === 0 || (i < 3 && j < 3);
            expect(Number.isFinite(v)).toBe(real && j >= i);
          }
    kx.dispose([x, mask]);
    a.dispose();
    b.dispose();
  });

  it('same seed, same weights; rejects bad sizes', () => {
    const a = new EfficientGlobalPointer({ hidden: 8, heads: 2, headSize: 4, rng: 7 });
    const b = new EfficientGlobalPointer({ hidden: 8, heads: 2, headSize: 4, rng: 7 });
    expect(Array.from(a.p_dense.weight.toFloat32Array())).toEqual(Array.from(b.p_dense.weight.toFloat32Array()));
    expect(() => new GlobalPointer({ hidden: 8, heads: 2, headSize: 3 })).toThrow(/even/);
    const x = kx.zeros([1, 4, 9]);
    expect(() => a.forward(x)).toThrow(kx.ShapeError);
    kx.dispose(x);
  });
});

describe('decoding (§2.6)', () => {
  // one text of 6 tokens: [CLS] t1 t2 t3 t4 [SEP] padded to 7; 2 types
  const n = 7;
  const raw = new Float32Array(2 * n * n).fill(-5);
  const put = (h: number, i: number, j: number, v: number) => (raw[(h * n + i) * n + j] = v);
  put(0, 1, 2, 3.0); // an entity of type 0 over tokens 1..2
  put(1, 2, 2, 0.5); // nested: type 1 on token 2
  put(0, 0, 0, 9); // [CLS]: excluded
  put(0, 5, 5, 9); // [SEP] of this text: excluded
  put(1, 3, 4, -0.1); // below the threshold
  const logits = kx.tensor(raw, [1, 2, n, n]);
  afterAll(() => logits.dispose());

  it('keeps every span above the threshold, excluding [CLS] and the real [SEP]', () => {
    const spans = decodeSpans(logits, { lengths: [6] });
    expect(spans.map((s) => [s.type, s.start, s.end])).toEqual([
      [0, 1, 2],
      [1, 2, 2],
    ]);
    expect(decodeSpans(logits, { lengths: [6], threshold: -0.2 }).length).toBe(3);
    expect(() => decodeSpans(logits, { lengths: [9] })).toThrow(kx.ArgumentError);
  });

  it('maps token spans to character offsets [start, end), skipping tokens without characters', () => {
    // text "北京大学生" ; tokens: [CLS] 北京 大 学 [UNK-empty] [SEP]
    const offsets: [number, number][] = [[0, 0], [0, 2], [2, 3], [3, 4], [4, 4], [0, 0], [0, 0]];
    const spans = decodeSpans(logits, { lengths: [6], threshold: -0.2 });
    const ents = spansToEntities(spans, offsets, ['LOC', 'ORG']);
    expect(ents.map((e) => [e.type, e.start, e.end])).toEqual([
      ['LOC', 0, 3],
      ['ORG', 2, 3],
    ]); // the (3, 4) span ends on the empty token: skipped
    const one = kx.reshape(kx.slice(logits, [0, 0, 0, 0], [1, 2, 6, 6]), [2, 6, 6]);
    expect(recognize(one, offsets, ['LOC', 'ORG']).length).toBe(2);
    expect(() => spansToEntities(spans, offsets, ['LOC'])).toThrow(kx.ArgumentError);
  });
});
