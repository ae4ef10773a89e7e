import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('reduce');
afterAll(() => kx.dispose(fx.tensors));

type Op = 'sum' | 'mean' | 'max';
const ops: Record<Op, (x: kx.Tensor, axes?: number | number[], keep?: boolean) => kx.Tensor> = {
  sum: kx.sum,
  mean: kx.mean,
  max: kx.max,
};

interface Case {
  name: string;
  op: Op;
  axes: number[] | null;
  keepDims: boolean;
  dtype: kx.DType;
}
const cases = fx.cases as unknown as Case[];

describe('reductions vs PyTorch', () => {
  for (const c of cases) {
    it(`${c.name} forward`, () => {
      kx.tidy(() => {
        const x = fx.get(`${c.name}.x`);
        expect(x.dtype).toBe(c.dtype);
        const y = ops[c.op](x, c.axes ?? undefined, c.keepDims);
        expect(y.dtype).toBe(c.dtype);
        // Reference: float32 on the same (half-rounded) inputs; halves are judged by their epsilon.
        expectClose(y, fx.get(`${c.name}.y`), tolerance(c.dtype, 'reduction'), c.name);
      });
    });
    if (!fx.tensors[`${c.name}.dx`]) continue;
    it(`${c.name} gradient of sum(y * w)`, () => {
      kx.tidy(() => {
        const x = fx.get(`${c.name}.x`);
        const w = kx.cast(fx.get(`${c.name}.w`), c.dtype);
        const [dx] = kx.grad(([p]) => kx.sum(kx.mul(ops[c.op](p!, c.axes ?? undefined, c.keepDims), w)), [x]);
        expect(dx!.dtype).toBe(c.dtype);
        // The upstream w is rounded to the half dtype too, hence the half tolerance.
        expectClose(dx!, fx.get(`${c.name}.dx`), tolerance(c.dtype), `${c.name} dx`);
      });
    });
  }
});

describe('reduction semantics', () => {
  it('sums all axes when axes is undefined or [], and over one or several axes', () => {
    kx.tidy(() => {
      const x = kx.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      expect(kx.sum(x).shape).toEqual([]);
      expect(kx.sum(x).item()).toBe(21);
      expect(kx.sum(x, []).item()).toBe(21);
      expect(Array.from(kx.sum(x, 0).dataSync())).toEqual([5, 7, 9]);
      expect(Array.from(kx.sum(x, -1, true).dataSync())).toEqual([6, 15]);
      expect(kx.sum(x, -1, true).shape).toEqual([2, 1]);
      expect(kx.sum(x, [1, 0], true).shape).toEqual([1, 1]);
      expect(Array.from(kx.mean(x, 1).dataSync())).toEqual([2, 5]);
      expect(Array.from(kx.max(x, 0).dataSync())).toEqual([4, 5, 6]);
    });
  });

  it('reduces a rank-0 tensor to itself', () => {
    kx.tidy(() => {
      const s = kx.scalar(2.5);
      expect(kx.sum(s).item()).toBe(2.5);
      expect(kx.mean(s).item()).toBe(2.5);
      expect(kx.max(s).shape).toEqual([]);
    });
  });

  it('sums an empty reduction to 0, means it to NaN (as PyTorch), and refuses max', () => {
    kx.tidy(() => {
      const e = kx.zeros([0, 3]);
      expect(Array.from(kx.sum(e, 0).dataSync())).toEqual([0, 0, 0]);
      expect(Array.from(kx.mean(e, 0).dataSync()).every(Number.isNaN)).toBe(true);
      expect(kx.sum(e, 1).shape).toEqual([0]);
      expectCode(() => kx.max(e, 0), 'E_ARG');
      expect(kx.max(e, 1).shape).toEqual([0]);
    });
  });

  it('propagates NaN through max and sum', () => {
    kx.tidy(() => {
      const x = kx.tensor([1, NaN, 3, -Infinity, 2, 5], [2, 3]);
      const m = Array.from(kx.max(x, 1).dataSync());
      expect(Number.isNaN(m[0]!)).toBe(true);
      expect(m[1]).toBe(5);
      expect(Number.isNaN(kx.sum(x).item())).toBe(true);
    });
  });

  it('stays accurate on a long row where naive float32 accumulation drifts', () => {
    kx.tidy(() => {
      // 2^24 + many ones: a single float32 accumulator would stop growing at 2^24.
      const n = 1 << 20;
      const data = new Float32Array(n + 1).fill(1);
      data[0] = 2 ** 24;
      const s = kx.sum(kx.tensor(data)).item();
      expect(Math.abs(s - (2 ** 24 + n)) / (2 ** 24 + n)).toBeLessThan(1e-6);
      // a tall column (the lane-wise path): 2^20 rows of 0.1, where one float32 accumulator
      // would be off by about 1e-2 relative
      const rows = 1 << 20;
      const col = kx.sum(kx.full([rows, 4], 0.1), 0).toFloat32Array();
      const exact = rows * Math.fround(0.1);
      for (const v of col) expect(Math.abs(v - exact) / exact).toBeLessThan(1e-6);
    });
  });

  it('matches a float64 sum on large random tensors over split axes', () => {
    kx.tidy(() => {
      const x = randomTensor([37, 129, 41], 11);
      const d = x.toFloat32Array();
      const y = kx.sum(x, [0, 2]).toFloat32Array();
      let err = 0;
      let scale = 0;
      for (let j = 0; j < 129; j++) {
        let s = 0;
        for (let i = 0; i < 37; i++) for (let k = 0; k < 41; k++) s += d[(i * 129 + j) * 41 + k]!;
        err = Math.max(err, Math.abs(s - y[j]!));
        scale = Math.max(scale, Math.abs(s));
      }
      expect(err / scale).toBeLessThan(1e-5);
    });
  });
});

describe('sumTo', () => {
  it('returns x itself when the shapes are equal', () => {
    const x = kx.ones([2, 3]);
    expect(kx.sumTo(x, [2, 3])).toBe(x);
    x.dispose();
  });

  it('folds leading axes and size-1 axes back', () => {
    kx.tidy(() => {
      const x = kx.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 2, 3]);
      const a = kx.sumTo(x, [3]);
      expect(a.shape).toEqual([3]);
      expect(Array.from(a.dataSync())).toEqual([22, 26, 30]);
      const b = kx.sumTo(x, [2, 1]);
      expect(b.shape).toEqual([2, 1]);
      expect(Array.from(b.dataSync())).toEqual([30, 48]);
      const c = kx.sumTo(x, [2, 1, 3]);
      expect(Array.from(c.dataSync())).toEqual([5, 7, 9, 17, 19, 21]);
      const d = kx.sumTo(x, []);
      expect(d.shape).toEqual([]);
      expect(d.item()).toBe(78);
      const e = kx.sumTo(x, [1, 1, 1]);
      expect(e.item()).toBe(78);
    });
  });

  it('rejects shapes that do not broadcast to x', () => {
    kx.tidy(() => {
      const x = kx.ones([2, 3]);
      expectCode(() => kx.sumTo(x, [2]), 'E_SHAPE');
      expectCode(() => kx.sumTo(x, [1, 2, 3]), 'E_SHAPE');
      expectCode(() => kx.sumTo(x, [4, 3]), 'E_SHAPE');
      expectCode(() => kx.sumTo(x, [2, -1]), 'E_ARG');
    });
  });

  it('is differentiable (broadcasts the gradient back)', () => {
    kx.tidy(() => {
      const x = randomTensor([3, 4, 5], 3);
      const w = randomTensor([4, 1], 4);
      expectGradOk((p) => kx.sum(kx.mul(kx.sumTo(p!, [4, 1]), w)), [x]);
    });
  });
});

describe('reduction gradients by finite differences', () => {
  const w = (shape: number[], seed: number) => randomTensor(shape, seed);
  it('sum and mean over split axes with keepDims', () => {
    kx.tidy(() => {
      const x = randomTensor([3, 4, 5], 21);
      const ws = w([1, 4, 1], 22);
      expectGradOk((p) => kx.sum(kx.mul(kx.sum(p!, [0, 2], true), ws)), [x]);
      expectGradOk((p) => kx.sum(kx.mul(kx.mean(p!, [0, 2], true), ws)), [x]);
      const wv = w([3, 5], 23);
      expectGradOk((p) => kx.sum(kx.mul(kx.mean(p!, 1), wv)), [x]);
    });
  });

  it('max over rows and over split axes (distinct values)', () => {
    kx.tidy(() => {
      // distinct values, spaced well beyond eps, so the argmax does not move under perturbation
      const n = 60;
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = ((i * 37) % n) * 0.1;
      const x = kx.tensor(data, [3, 4, 5]);
      const wv = w([3, 5], 31);
      expectGradOk((p) => kx.sum(kx.mul(kx.max(p!, 1), wv)), [x], { eps: 1e-3 });
      const w4 = w([4], 32);
      expectGradOk((p) => kx.sum(kx.mul(kx.max(p!, [0, 2]), w4)), [x], { eps: 1e-3 });
    });
  });

  it('max splits the gradient evenly among tied maxima', () => {
    kx.tidy(() => {
      const x = kx.tensor([1, 3, 3, 2, 3, 0], [6]);
      const [dx] = kx.grad(([p]) => kx.max(p!), [x]);
      const g = Array.from(dx!.dataSync());
      expect(g.map((v) => Math.round(v * 1e6) / 1e6)).toEqual([0, 1 / 3, 1 / 3, 0, 1 / 3, 0].map((v) => Math.round(v * 1e6) / 1e6));
    });
  });
});

describe('reduction errors', () => {
  it('rejects bad axes with E_ARG', () => {
    kx.tidy(() => {
      const x = kx.ones([2, 3]);
      expectCode(() => kx.sum(x, 2), 'E_ARG');
      expectCode(() => kx.sum(x, -3), 'E_ARG');
      expectCode(() => kx.mean(x, [0, 0]), 'E_ARG');
      expectCode(() => kx.max(x, [1, -1]), 'E_ARG');
      expectCode(() => kx.sum(x, 0.5), 'E_ARG');
    });
  });

  it('rejects non-float inputs with E_DTYPE', () => {
    kx.tidy(() => {
      const i = kx.tensor(new Int32Array([1, 2, 3]));
      expectCode(() => kx.sum(i), 'E_DTYPE');
      expectCode(() => kx.max(i), 'E_DTYPE');
    });
  });

  it('re-checks axes natively', () => {
    kx.tidy(() => {
      const x = kx.ones([2, 3]);
      expectCode(() => kx.runKernel('sum', [x], { axes: [5] }), 'E_ARG');
      expectCode(() => kx.runKernel('max', [x], { axes: [1, 1] }), 'E_ARG');
      expectCode(() => kx.runKernel('max_backward', [x, kx.ones([3]), kx.ones([2])], { axes: [0] }), 'E_SHAPE');
    });
  });
});
