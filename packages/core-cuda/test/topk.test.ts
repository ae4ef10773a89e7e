import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode, expectGradOk, loadFixture, randomTensor } from './helpers.js';

const fx = loadFixture('topk');
afterAll(() => kx.dispose(fx.tensors));

interface Case {
  name: string;
  k: number;
  axis: number;
  largest: boolean;
  dtype: kx.DType;
  grad: boolean;
  torchSameOrder: boolean;
  formula?: 'big_rows';
  shape?: [number, number];
}
const cases = fx.cases as unknown as Case[];

/** fx_topk.py's big_rows: multiples of 1/256 in [-8, 8), and NaN at c % 9001 == r in rows r % 4 == 1. */
function bigRows(rows: number, cols: number): kx.Tensor {
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      data[r * cols + c] = r % 4 === 1 && c % 9001 === r ? NaN : ((c * 7919 + r * 104729) % 4096) / 256 - 8;
    }
  }
  return kx.tensor(data, [rows, cols]);
}

function input(c: Case): kx.Tensor {
  return c.formula ? bigRows(...c.shape!) : fx.get(`${c.name}.x`);
}

/** The same floats bit for bit, as far as float32 shows them: -0 is not +0, NaN matches NaN. */
function expectSameFloats(actual: kx.Tensor, expected: kx.Tensor | Float32Array, label: string): void {
  const a = actual.toFloat32Array();
  const e = expected instanceof kx.Tensor ? expected.toFloat32Array() : expected;
  expect(a.length, label).toBe(e.length);
  for (let i = 0; i < e.length; i++) {
    if (!Object.is(a[i], e[i]) && !(Number.isNaN(a[i]!) && Number.isNaN(e[i]!))) {
      expect.fail(`${label}: element ${i} is ${a[i]}, expected ${e[i]}`);
    }
  }
}

function ints(t: kx.Tensor): number[] {
  return Array.from(t.dataSync() as Int32Array);
}

describe('topk vs PyTorch', () => {
  for (const c of cases) {
    it(`${c.name} (${c.dtype}): values and indices, equal entries in index order`, () => {
      kx.tidy(() => {
        const { values, indices } = kx.topk(input(c), c.k, { axis: c.axis, largest: c.largest });
        const expected = fx.get(`${c.name}.values`);
        expect(values.dtype).toBe(c.dtype);
        expect(indices.dtype).toBe('int32');
        expect(values.shape).toEqual(expected.shape);
        expect(indices.shape).toEqual(expected.shape);
        expectSameFloats(values, expected, `${c.name} values`);
        expect(ints(indices)).toEqual(ints(fx.get(`${c.name}.indices`)));
      });
    });
    if (c.grad) {
      it(`${c.name}: gradient of sum(values * w) is w scattered to the indices`, () => {
        kx.tidy(() => {
          const w = fx.get(`${c.name}.w`);
          const [dx] = kx.grad(([p]) => kx.sum(kx.mul(kx.topk(p!, c.k, { axis: c.axis, largest: c.largest }).values, w)), [input(c)]);
          expect(dx!.dtype).toBe(c.dtype);
          expectSameFloats(dx!, fx.get(`${c.name}.dx`), `${c.name} dx`);
        });
      });
    }
  }

  it('the fixture has ties PyTorch orders otherwise (so index order is really tested)', () => {
    expect(cases.some((c) => !c.torchSameOrder)).toBe(true);
  });
});

/** Softmax-like rows [rows, cols] and, per row, the indices of a stable descending sort (JS's sort is stable). */
function probabilityRows(rows: number, cols: number, seed: number): { x: kx.Tensor; order: number[][] } {
  const x = kx.softmax(randomTensor([rows, cols], seed, 6));
  const data = x.toFloat32Array();
  const order = Array.from({ length: rows }, (_, r) => {
    const row = data.subarray(r * cols, (r + 1) * cols);
    return Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!);
  });
  return { x, order };
}

describe('topk semantics', () => {
  it('[16, 50000] probability rows, k = 1..8 (the streaming path): a sort prefix, each k a prefix of the next', () => {
    kx.tidy(() => {
      const { x, order } = probabilityRows(16, 50000, 7);
      for (const k of [1, 2, 4, 8]) {
        const { values, indices } = kx.topk(x, k);
        expect(indices.shape).toEqual([16, k]);
        const got = ints(indices);
        const v = values.toFloat32Array();
        const xs = x.toFloat32Array();
        for (let r = 0; r < 16; r++) {
          expect(got.slice(r * k, (r + 1) * k)).toEqual(order[r]!.slice(0, k));
          for (let t = 0; t < k; t++) expect(v[r * k + t]).toBe(xs[r * 50000 + got[r * k + t]!]);
        }
      }
    });
  });

  it('k = 0, empty tensors and k = the axis size', () => {
    kx.tidy(() => {
      const none = kx.topk(kx.ones([3, 4]), 0);
      expect(none.values.shape).toEqual([3, 0]);
      expect(none.indices.shape).toEqual([3, 0]);
      expect(kx.topk(kx.zeros([0, 5]), 2).indices.shape).toEqual([0, 2]);
      expect(kx.topk(kx.zeros([2, 0, 3]), 0, { axis: 1 }).values.shape).toEqual([2, 0, 3]);
      const all = kx.topk(kx.tensor([2, 0, 1]), 3, { largest: false });
      expect(ints(all.indices)).toEqual([1, 2, 0]);
      const [dx] = kx.grad(([p]) => kx.sum(kx.topk(p!, 0).values), [kx.ones([2, 3])]);
      expect(Array.from(dx!.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });

  it('passes finite differences along the last axis and a middle one, largest and smallest', () => {
    kx.tidy(() => {
      // Entries 0.1 apart, so that a step of eps = 1e-2 never changes which are chosen.
      const n = 60;
      const perm = Array.from({ length: n }, (_, i) => (i * 37) % n);
      const x = kx.tensor(Float32Array.from(perm, (p) => p * 0.1 - 3), [3, 4, 5]);
      const w2 = randomTensor([3, 4, 2], 5);
      const w3 = randomTensor([3, 3, 5], 6);
      expectGradOk((p) => kx.sum(kx.mul(kx.topk(p!, 2).values, w2)), [x]);
      expectGradOk((p) => kx.sum(kx.mul(kx.topk(p!, 3, { axis: 1, largest: false }).values, w3)), [x]);
    });
  });

  it('differentiates half inputs in their dtype: w rounded once, at the chosen entries', () => {
    kx.tidy(() => {
      const x = kx.tensor([0.5, -1, 3, 2, 7, -4], [2, 3], { dtype: 'bfloat16' });
      const w = kx.tensor([0.1, 0.2, 0.3, 0.4], [2, 2]);
      const [dx] = kx.grad(([p]) => kx.sum(kx.mul(kx.cast(kx.topk(p!, 2).values, 'float32'), w)), [x]);
      expect(dx!.dtype).toBe('bfloat16');
      const bf = kx.cast(kx.cast(w, 'bfloat16'), 'float32').toFloat32Array();
      expect(Array.from(dx!.toFloat32Array())).toEqual([bf[1], 0, bf[0], bf[3], bf[2], 0]);
    });
  });
});

describe('topk errors', () => {
  it('rejects a bad k, axis or option with E_ARG, a non-float x with E_DTYPE, a scalar with E_ARG', () => {
    kx.tidy(() => {
      const x = kx.ones([2, 3]);
      for (const k of [-1, 4, 1.5, NaN, Infinity]) expectCode(() => kx.topk(x, k), 'E_ARG');
      expectCode(() => kx.topk(x, '2' as unknown as number), 'E_ARG');
      expect(expectCode(() => kx.topk(x, 4), 'E_ARG').message).toMatch(/k must be an integer in \[0, 3\]/);
      expectCode(() => kx.topk(x, 3, { axis: 0 }), 'E_ARG');
      expectCode(() => kx.topk(x, 1, { axis: 2 }), 'E_ARG');
      expectCode(() => kx.topk(x, 1, { largest: 'yes' as unknown as boolean }), 'E_ARG');
      expectCode(() => kx.topk(x, 1, 3 as unknown as kx.TopkOptions), 'E_ARG');
      expectCode(() => kx.topk(kx.tensor(new Int32Array([1, 2])), 1), 'E_DTYPE');
      expectCode(() => kx.topk(kx.tensor(new Uint8Array([1, 2])), 1), 'E_DTYPE');
      expectCode(() => kx.topk(kx.scalar(1), 0), 'E_ARG');
    });
  });

  it('checks natively too: k, axis, the backward indices and shapes', () => {
    kx.tidy(() => {
      const x = kx.ones([2, 3]);
      expect(expectCode(() => kx.runKernel('topk', [x], { k: 4 }), 'E_ARG').message).toMatch(/k must be in \[0, 3\]/);
      expectCode(() => kx.runKernel('topk', [x], {}), 'E_ARG');
      expectCode(() => kx.runKernel('topk', [x], { k: 1, axis: 2 }), 'E_ARG');
      expectCode(() => kx.runKernel('topk', [kx.scalar(1)], { k: 0 }), 'E_ARG');
      const idx = kx.tensor(Int32Array.from([0, 2, 1, 3]), [2, 2]);
      const dy = kx.ones([2, 2]);
      const err = expectCode(() => kx.runKernel('topk_backward', [idx, dy], { axis: -1, length: 3 }), 'E_ARG');
      expect(err.message).toMatch(/index 3 at position 3 is outside \[0, 3\)/);
      expectCode(() => kx.runKernel('topk_backward', [kx.tensor(Int32Array.from([-1, 0]), [1, 2]), kx.ones([1, 2])], { length: 3 }), 'E_ARG');
      expectCode(() => kx.runKernel('topk_backward', [idx, dy], { axis: -1 }), 'E_ARG');
      expectCode(() => kx.runKernel('topk_backward', [idx, kx.ones([2, 3])], { length: 4 }), 'E_SHAPE');
      const dx = kx.runKernel('topk_backward', [idx, kx.tensor([1, 2, 3, 4], [2, 2])], { axis: -1, length: 4 })[0]!;
      expect(Array.from(dx.toFloat32Array())).toEqual([1, 0, 2, 0, 0, 3, 0, 4]);
    });
  });
});
