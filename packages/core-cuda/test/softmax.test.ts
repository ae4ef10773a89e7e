import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('softmax');
afterAll(() => kx.dispose(fx.tensors));

interface Case {
  name: string;
  op: 'softmax' | 'log_softmax';
  axis: number;
  dtype: kx.DType;
}
const cases = (fx.cases as unknown as Case[]).filter((c) => c.op !== ('cross_entropy' as string));
const fn = { softmax: kx.softmax, log_softmax: kx.logSoftmax };

describe('softmax / logSoftmax vs PyTorch', () => {
  for (const c of cases) {
    it(`${c.name} forward`, () => {
      kx.tidy(() => {
        const x = fx.get(`${c.name}.x`);
        const y = fn[c.op](x, c.axis);
        expect(y.dtype).toBe(c.dtype);
        expectClose(y, fx.get(`${c.name}.y`), tolerance(c.dtype), c.name);
      });
    });
    it(`${c.name} gradient of sum(y * w)`, () => {
      kx.tidy(() => {
        const x = fx.get(`${c.name}.x`);
        const w = kx.cast(fx.get(`${c.name}.w`), c.dtype);
        const [dx] = kx.grad(([p]) => kx.sum(kx.mul(fn[c.op](p!, c.axis), w)), [x]);
        expect(dx!.dtype).toBe(c.dtype);
        // The backward sums a row (sum(dy·y)), so float32 is held to the reduction tolerance.
        expectClose(dx!, fx.get(`${c.name}.dx`), tolerance(c.dtype, 'reduction'), `${c.name} dx`);
      });
    });
  }
});

describe('softmax semantics', () => {
  it('rows sum to one, along the last axis and along axis 0', () => {
    kx.tidy(() => {
      const x = randomTensor([7, 19], 5, 6);
      const a = kx.sum(kx.softmax(x), -1).toFloat32Array();
      const b = kx.sum(kx.softmax(x, 0), 0).toFloat32Array();
      for (const v of [...a, ...b]) expect(Math.abs(v - 1)).toBeLessThan(1e-6);
    });
  });

  it('is shift invariant and stable for huge logits', () => {
    kx.tidy(() => {
      const y = kx.softmax(kx.tensor([1000, 1001, 1002])).toFloat32Array();
      const z = kx.softmax(kx.tensor([0, 1, 2])).toFloat32Array();
      for (let i = 0; i < 3; i++) expect(Math.abs(y[i]! - z[i]!)).toBeLessThan(1e-7);
      const l = kx.logSoftmax(kx.tensor([-1e4, 0])).toFloat32Array();
      expect(l[0]).toBeCloseTo(-1e4, 0);
      expect(l[1]).toBe(0);
    });
  });

  it('gives NaN on an all -inf row (as PyTorch) and exact zeros at -inf entries', () => {
    kx.tidy(() => {
      const y = kx.softmax(kx.tensor([-Infinity, -Infinity, -Infinity, -Infinity, 1, 2], [2, 3])).toFloat32Array();
      expect(Number.isNaN(y[0]!) && Number.isNaN(y[1]!) && Number.isNaN(y[2]!)).toBe(true);
      expect(y[3]).toBe(0);
    });
  });

  it('passes finite differences (last axis, middle axis, log)', () => {
    kx.tidy(() => {
      const x = randomTensor([3, 5, 4], 8, 2);
      const w = randomTensor([3, 5, 4], 9);
      const opts = { eps: 1e-2, atol: 2e-3, rtol: 1e-2 };
      expectGradOk((p) => kx.sum(kx.mul(kx.softmax(p!), w)), [x], opts);
      expectGradOk((p) => kx.sum(kx.mul(kx.softmax(p!, 1), w)), [x], opts);
      expectGradOk((p) => kx.sum(kx.mul(kx.logSoftmax(p!, 0), w)), [x], opts);
    });
  });
});

describe('softmax errors', () => {
  it('rejects a bad axis with E_ARG and non-float input with E_DTYPE', () => {
    kx.tidy(() => {
      const x = kx.ones([2, 3]);
      expectCode(() => kx.softmax(x, 2), 'E_ARG');
      expectCode(() => kx.logSoftmax(x, -3), 'E_ARG');
      expectCode(() => kx.softmax(kx.scalar(1)), 'E_ARG');
      expectCode(() => kx.softmax(kx.tensor(new Int32Array([1, 2]))), 'E_DTYPE');
      expectCode(() => kx.runKernel('softmax', [x], { axis: 7 }), 'E_ARG');
      expectCode(() => kx.runKernel('softmax_backward', [x, kx.ones([3, 2])], { axis: -1 }), 'E_SHAPE');
    });
  });
});
