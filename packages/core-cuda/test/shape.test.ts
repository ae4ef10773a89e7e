import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor } from './helpers.js';

const fx = loadFixture('shape');
afterAll(() => kx.dispose(fx.tensors));

interface Case {
  name: string;
  op: 'permute' | 'transpose' | 'slice' | 'concat';
  inputs: number;
  grads: boolean;
  perm?: number[];
  axis0?: number;
  axis1?: number;
  begin?: number[];
  size?: number[];
  axis?: number;
}
const cases = fx.cases as unknown as Case[];

function apply(c: Case, xs: kx.Tensor[]): kx.Tensor {
  switch (c.op) {
    case 'permute': return kx.permute(xs[0]!, c.perm!);
    case 'transpose': return kx.transpose(xs[0]!, c.axis0, c.axis1);
    case 'slice': return kx.slice(xs[0]!, c.begin!, c.size!);
    case 'concat': return kx.concat(xs, c.axis);
  }
}

const inputsOf = (c: Case) => Array.from({ length: c.inputs }, (_, i) => fx.get(`${c.name}.x${i}`));

describe('shape ops vs PyTorch (exact copies, every dtype)', () => {
  for (const c of cases) {
    it(`${c.name}`, () => kx.tidy(() => {
      const y = apply(c, inputsOf(c));
      const want = fx.get(`${c.name}.y`);
      expect(y.dtype).toBe(want.dtype);
      expect(y.shape).toEqual(want.shape);
      expect(Array.from(y.dataSync())).toEqual(Array.from(want.dataSync()));
      y.dispose();
    }));
  }
});

describe('shape op gradients', () => {
  for (const c of cases.filter((c) => c.grads)) {
    it(`${c.name} matches PyTorch`, () => kx.tidy(() => {
      const w = fx.get(`${c.name}.w`);
      const grads = kx.grad((xs) => kx.sum(kx.mul(apply(c, xs), w)), inputsOf(c));
      grads.forEach((g, i) => expectClose(g, fx.get(`${c.name}.dx${i}`), 0, `${c.name} dx${i}`));
      kx.dispose(grads);
    }));
  }

  for (const name of ['perm_general', 'perm_last2', 'transpose_axes', 'slice_box', 'slice_last', 'concat_axis1', 'concat_last']) {
    it(`${name} passes finite differences`, () => kx.tidy(() => {
      const c = cases.find((c) => c.name === name)!;
      const w = fx.get(`${name}.w`);
      expectGradOk((...xs) => kx.sum(kx.mul(apply(c, xs), w)), inputsOf(c), { eps: 1e-2, atol: 1e-3, rtol: 1e-3 });
    }));
  }

  it('slice_backward writes dy into zeros at begin, and its own gradient is the slice', () => kx.tidy(() => {
    const dy = kx.tensor(new Int32Array([1, 2, 3, 4]), [2, 2]);
    const dx = kx.runKernel('slice_backward', [dy], { shape: [3, 4], begin: [1, 1] })[0]!;
    expect(Array.from(dx.dataSync())).toEqual([0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0]);
    const g = randomTensor([2, 3], 9);
    const w = randomTensor([4, 5], 10);
    expectGradOk((x) => kx.sum(kx.mul(kx.runKernel('slice_backward', [x], { shape: [4, 5], begin: [2, 1] })[0]!, w)), [g]);
    kx.dispose([dy, dx, g, w]);
  }));
});

describe('shape op details', () => {
  it('transpose defaults to the last two axes and permute accepts negative axes', () => kx.tidy(() => {
    const x = randomTensor([2, 3, 4], 1);
    const a = kx.transpose(x);
    const b = kx.permute(x, [0, -1, 1]);
    expect(a.shape).toEqual([2, 4, 3]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    const xv = x.toFloat32Array();
    expect(a.toFloat32Array()[1 * 12 + 3 * 3 + 2]).toBe(xv[1 * 12 + 2 * 4 + 3]);
    kx.dispose([x, a, b]);
  }));

  it('permutes float16 bits unchanged and handles an identity permutation as a copy', () => kx.tidy(() => {
    const x = kx.cast(randomTensor([5, 7], 2), 'float16');
    const t = kx.transpose(kx.transpose(x));
    expect(Array.from(t.dataSync())).toEqual(Array.from(x.dataSync()));
    const id = kx.permute(x, [0, 1]);
    expect(id).not.toBe(x);
    expect(Array.from(id.dataSync())).toEqual(Array.from(x.dataSync()));
    kx.dispose([x, t, id]);
  }));

  it('handles empty tensors and rank-0 slices', () => kx.tidy(() => {
    const e = kx.permute(kx.zeros([0, 3, 2]), [2, 0, 1]);
    expect(e.shape).toEqual([2, 0, 3]);
    const s = kx.slice(kx.tensor(5), [], []);
    expect(s.shape).toEqual([]);
    expect(s.item()).toBe(5);
    const c = kx.concat([kx.zeros([2, 0]), kx.ones([2, 1])], 1);
    expect(Array.from(c.toFloat32Array())).toEqual([1, 1]);
    kx.dispose([e, s, c]);
  }));

  it('a large transpose (several tiles, several threads) moves every element', () => kx.tidy(() => {
    const n = 301;
    const m = 517;
    const data = new Int32Array(n * m).map((_, i) => i);
    const x = kx.tensor(data, [n, m]);
    const y = kx.transpose(x).dataSync() as Int32Array;
    let ok = true;
    for (let i = 0; i < m && ok; i++) for (let j = 0; j < n; j++) if (y[i * n + j] !== j * m + i) ok = false;
    expect(ok).toBe(true);
    x.dispose();
  }));
});

describe('shape op errors', () => {
  const x = randomTensor([2, 3, 4], 1);
  afterAll(() => x.dispose());

  it('permute/transpose reject bad axes with E_ARG', () => kx.tidy(() => {
    expectCode(() => kx.permute(x, [0, 1]), 'E_ARG');
    expectCode(() => kx.permute(x, [0, 1, 1]), 'E_ARG');
    expectCode(() => kx.permute(x, [0, 1, 3]), 'E_ARG');
    expectCode(() => kx.transpose(x, 0, 5), 'E_ARG');
    expectCode(() => kx.runKernel('permute', [x], { perm: [0, 0, 1] }), 'E_ARG');
    expectCode(() => kx.runKernel('permute', [x], { perm: [2, 1] }), 'E_ARG');
  }));

  it('slice rejects boxes outside the tensor with E_ARG', () => kx.tidy(() => {
    expectCode(() => kx.slice(x, [0, 0], [1, 1]), 'E_ARG');
    expectCode(() => kx.slice(x, [-1, 0, 0], [1, 1, 1]), 'E_ARG');
    expectCode(() => kx.slice(x, [1, 0, 0], [2, -1, -1]), 'E_ARG');
    expectCode(() => kx.slice(x, [0, 4, 0], [1, -1, -1]), 'E_ARG');
    expectCode(() => kx.runKernel('slice', [x], { begin: [0, 0, 3], size: [1, 1, 2] }), 'E_ARG');
    expectCode(() => kx.runKernel('slice', [x], { begin: [0, 0], size: [1, 1] }), 'E_ARG');
    expectCode(() => kx.runKernel('slice_backward', [x], { shape: [2, 3, 3], begin: [0, 0, 0] }), 'E_ARG');
    expectCode(() => kx.runKernel('slice_backward', [x], { shape: [2, 3], begin: [0, 0] }), 'E_SHAPE');
  }));

  it('concat checks dtypes (E_DTYPE), other dims (E_SHAPE) and the axis (E_ARG)', () => kx.tidy(() => {
    const h = kx.cast(x, 'float16');
    const y = randomTensor([2, 5, 4], 2);
    expectCode(() => kx.concat([x, h]), 'E_DTYPE');
    expectCode(() => kx.runKernel('concat', [x, h], { axis: 0 }), 'E_DTYPE');
    expectCode(() => kx.concat([x, y], 0), 'E_SHAPE');
    expectCode(() => kx.runKernel('concat', [x, y], { axis: 2 }), 'E_SHAPE');
    expectCode(() => kx.concat([x, randomTensor([2, 3], 3)], 0), 'E_SHAPE');
    expectCode(() => kx.concat([x, y], 3), 'E_ARG');
    expectCode(() => kx.runKernel('concat', [x, y], { axis: -1 }), 'E_ARG');
    expectCode(() => kx.concat([]), 'E_ARG');
    expectCode(() => kx.concat([kx.tensor(1), kx.tensor(2)]), 'E_SHAPE');
    const ok = kx.concat([x, y], 1);
    expect(ok.shape).toEqual([2, 8, 4]);
    kx.dispose([h, y, ok]);
  }));
});
