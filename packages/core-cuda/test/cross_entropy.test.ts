import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('softmax');
afterAll(() => kx.dispose(fx.tensors));

interface Case {
  name: string;
  op: string;
  ignoreIndex: number;
  dtype: kx.DType;
}
const cases = (fx.cases as unknown as Case[]).filter((c) => c.op === 'cross_entropy');

describe('crossEntropy vs PyTorch', () => {
  it('has its cases in the fixture', () => expect(cases.length).toBeGreaterThanOrEqual(7));
  for (const c of cases) {
    it(`${c.name} loss and gradient`, () => {
      kx.tidy(() => {
        const logits = fx.get(`${c.name}.logits`);
        const labels = fx.get(`${c.name}.labels`);
        expect(logits.dtype).toBe(c.dtype);
        const loss = kx.crossEntropy(logits, labels, { ignoreIndex: c.ignoreIndex });
        // float32 for every logits dtype: losses are accumulated in float32
        expect(loss.dtype).toBe('float32');
        expect(loss.shape).toEqual([]);
        // the loss is a mean of row logsumexps (a reduction); halves against their epsilon
        expectClose(loss, fx.get(`${c.name}.loss`), tolerance(c.dtype, 'reduction'), c.name);
        const w = fx.get(`${c.name}.w`);
        const [dx] = kx.grad(([p]) => kx.mul(kx.crossEntropy(p!, labels, { ignoreIndex: c.ignoreIndex }), w), [logits]);
        expect(dx!.dtype).toBe(c.dtype);
        expectClose(dx!, fx.get(`${c.name}.dx`), tolerance(c.dtype, 'reduction'), `${c.name} dx`);
        // The gradient of the loss used as is comes from the forward's own pass (dloss = 1).
        const [dxFused] = kx.grad(([p]) => kx.crossEntropy(p!, labels, { ignoreIndex: c.ignoreIndex }), [logits]);
        const wv = w.toFloat32Array()[0]!;
        expectClose(dxFused!, kx.div(kx.cast(fx.get(`${c.name}.dx`), 'float32'), wv), tolerance(c.dtype, 'reduction'), `${c.name} fused dx`);
      });
    });
  }
});

describe('crossEntropy: the forward gradient and the backward kernel agree', () => {
  it('grad of 2·CE is exactly twice grad of CE (the first from the backward kernel, the second from the forward)', () => {
    kx.tidy(() => {
      const x = randomTensor([37, 1001], 7, 8);
      const labels = kx.tensor(Int32Array.from({ length: 37 }, (_, i) => (i === 5 ? -100 : (i * 97) % 1001)), [37]);
      const [g1] = kx.grad(([p]) => kx.crossEntropy(p!, labels), [x]);
      const [g2] = kx.grad(([p]) => kx.mul(kx.crossEntropy(p!, labels), 2), [x]);
      const a = kx.mul(g1!, 2).toFloat32Array(), b = g2!.toFloat32Array();
      expect(a.every((v, i) => Object.is(v, b[i]))).toBe(true);
      // ignored rows get no gradient on either path
      expect(kx.slice(g1!, [5, 0], [1, 1001]).toFloat32Array().every((v) => v === 0)).toBe(true);
    });
  });

  it('computes the forward gradient for the outputGradient the backward pass starts from (loss scaling)', () => {
    kx.tidy(() => {
      for (const dtype of ['float32', 'float16'] as const) {
        const x = kx.cast(randomTensor([19, 517], 9, 6), dtype);
        const labels = kx.tensor(Int32Array.from({ length: 19 }, (_, i) => (i === 3 ? -100 : (i * 31) % 517)), [19]);
        for (const s of [1024, 3]) {
          // from the forward (the loss reaches the seed unchanged, here through a sum) ...
          const [fused] = kx.grad(([p]) => kx.add(kx.crossEntropy(p!, labels), kx.scalar(0.5)), [x], { outputGradient: s });
          // ... and from the backward kernel (dloss = s · 1 is a new tensor): the same bits
          const [unfused] = kx.grad(([p]) => kx.mul(kx.crossEntropy(p!, labels), s), [x]);
          const a = fused!.toFloat32Array(), b = unfused!.toFloat32Array();
          expect(a.every((v, i) => Object.is(v, b[i])), `${dtype} ×${s}`).toBe(true);
          // and the scaled fp16 gradient keeps what the unscaled one rounds to zero
          if (dtype === 'float16' && s === 1024) {
            const [plain] = kx.grad(([p]) => kx.crossEntropy(p!, labels), [x]);
            const zeros = (t: Float32Array) => t.filter((v) => v === 0).length;
            expect(zeros(a)).toBeLessThan(zeros(plain!.toFloat32Array()));
          }
        }
      }
    });
  });

  it('computes no gradient outside a gradient tape (one output)', () => {
    kx.tidy(() => {
      const logits = randomTensor([4, 10], 8);
      const labels = kx.tensor(new Int32Array([1, 2, 3, 4]), [4]);
      const before = kx.memory().tensors;
      const loss = kx.crossEntropy(logits, labels);
      expect(loss.shape).toEqual([]);
      expect(kx.memory().tensors - before).toBe(1);
    });
  });
});

describe('crossEntropy semantics', () => {
  it('ignores rows with ignoreIndex and averages over the rest', () => {
    kx.tidy(() => {
      const logits = randomTensor([3, 4], 3, 2);
      const all = kx.crossEntropy(logits, kx.tensor(new Int32Array([1, 2, 3]))).item();
      const one = kx.crossEntropy(kx.reshape(logits, [3, 4]), kx.tensor(new Int32Array([-100, 2, -100]))).item();
      const x = logits.toFloat32Array();
      const rowLoss = (r: number, l: number) => {
        let s = 0;
        for (let c = 0; c < 4; c++) s += Math.exp(x[r * 4 + c]!);
        return Math.log(s) - x[r * 4 + l]!;
      };
      expect(one).toBeCloseTo(rowLoss(1, 2), 5);
      expect(all).toBeCloseTo((rowLoss(0, 1) + rowLoss(1, 2) + rowLoss(2, 3)) / 3, 5);
      // a custom ignoreIndex that is also a valid class
      const custom = kx.crossEntropy(logits, kx.tensor(new Int32Array([1, 2, 3])), { ignoreIndex: 2 }).item();
      expect(custom).toBeCloseTo((rowLoss(0, 1) + rowLoss(2, 3)) / 2, 5);
    });
  });

  it('returns NaN when every row is ignored, like PyTorch, with zero gradient', () => {
    kx.tidy(() => {
      const logits = randomTensor([2, 3], 4);
      const labels = kx.tensor(new Int32Array([-100, -100]));
      expect(Number.isNaN(kx.crossEntropy(logits, labels).item())).toBe(true);
      const [dx] = kx.grad(([p]) => kx.crossEntropy(p!, labels), [logits]);
      expect(Array.from(dx!.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });

  it('passes finite differences', () => {
    kx.tidy(() => {
      const logits = randomTensor([5, 7], 12, 2);
      const labels = kx.tensor(new Int32Array([0, 6, -100, 3, 1]));
      expectGradOk((p) => kx.crossEntropy(p!, labels), [logits], { eps: 1e-2, atol: 1e-4, rtol: 1e-2 });
    });
  });
});

describe('crossEntropy errors', () => {
  const logits = () => kx.ones([3, 4]);
  it('rejects int32 logits (E_DTYPE), non-int32 labels (E_DTYPE) and mismatched shapes (E_SHAPE)', () => {
    kx.tidy(() => {
      const labels = kx.tensor(new Int32Array([0, 1, 2]));
      expectCode(() => kx.crossEntropy(kx.tensor(new Int32Array(12), [3, 4]), labels), 'E_DTYPE');
      expectCode(() => kx.crossEntropy(logits(), kx.tensor([0, 1, 2])), 'E_DTYPE');
      expectCode(() => kx.crossEntropy(logits(), kx.tensor(new Int32Array([0, 1]))), 'E_SHAPE');
      expectCode(() => kx.crossEntropy(logits(), kx.tensor(new Int32Array(3), [3, 1])), 'E_SHAPE');
      expectCode(() => kx.crossEntropy(kx.ones([3, 4, 1]), labels), 'E_SHAPE');
      expectCode(() => kx.crossEntropy(logits(), labels, { ignoreIndex: 0.5 }), 'E_ARG');
    });
  });

  it('rejects a label outside [0, C) natively, naming the row and the value', () => {
    kx.tidy(() => {
      expectCode(() => kx.crossEntropy(logits(), kx.tensor(new Int32Array([0, 4, 1]))), 'E_ARG');
      expectCode(() => kx.crossEntropy(logits(), kx.tensor(new Int32Array([0, 1, -1]))), 'E_ARG');
      // -100 is only ignored while it is the ignoreIndex
      expectCode(() => kx.crossEntropy(logits(), kx.tensor(new Int32Array([-100, 1, 2])), { ignoreIndex: 3 }), 'E_ARG');
      expect(expectCode(() => kx.crossEntropy(logits(), kx.tensor(new Int32Array([0, 1, 9]))), 'E_ARG').message).toMatch(/label 9 of row 2/);
    });
  });
});
