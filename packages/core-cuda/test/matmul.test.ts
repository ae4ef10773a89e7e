import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, maxRelError, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('matmul');
afterAll(() => kx.dispose(fx.tensors));

interface Case {
  name: string;
  transA: boolean;
  transB: boolean;
  grads: boolean;
  half?: boolean;
  bias: boolean;
}
const cases = fx.cases as unknown as Case[];
const flags = (c: Case): kx.MatmulOptions => ({ transA: c.transA, transB: c.transB });
/** The operands of a case: a, b, and the bias row when it has one. */
const operands = (c: Case): kx.Tensor[] => [fx.get(`${c.name}.a`), fx.get(`${c.name}.b`), ...(c.bias ? [fx.get(`${c.name}.bias`)] : [])];

/** The scalar loss sum(matmul(a, b[, bias]) * w), as in the fixture script. */
const loss = (w: kx.Tensor, options: kx.MatmulOptions) => (a: kx.Tensor, b: kx.Tensor, bias?: kx.Tensor) =>
  kx.sum(kx.mul(kx.matmul(a, b, { ...options, bias }), w));

describe('matmul forward vs PyTorch', () => {
  for (const c of cases.filter((c) => !c.half)) {
    it(`${c.name} (transA=${c.transA}, transB=${c.transB}${c.bias ? ', bias' : ''})`, () => kx.tidy(() => {
      const [a, b, bias] = operands(c);
      const y = kx.matmul(a!, b!, { ...flags(c), bias });
      expectClose(y, fx.get(`${c.name}.y`), tolerance('float32', 'reduction'), c.name);
      y.dispose();
    }));
  }

  for (const c of cases.filter((c) => c.half)) {
    it(`${c.name}: half inputs, float32 accumulation, one rounding`, () => kx.tidy(() => {
      const [a, b, bias] = operands(c) as [kx.Tensor, kx.Tensor, kx.Tensor?];
      const y = kx.matmul(a, b, { ...flags(c), bias });
      expect(y.dtype).toBe(a.dtype);
      expectClose(y, fx.get(`${c.name}.y`), tolerance(a.dtype, 'reduction'), c.name);
      // Rounding the float32 product once can be off by at most half an ulp of the half type.
      const ref = kx.cast(kx.cast(fx.get(`${c.name}.y`), a.dtype), 'float32');
      expect(maxRelError(y, ref)).toBeLessThanOrEqual(a.dtype === 'float16' ? 2 ** -11 : 2 ** -8);
      kx.dispose([y, ref]);
    }));
  }
});

describe('matmul gradients', () => {
  for (const c of cases.filter((c) => c.grads)) {
    it(`${c.name} matches PyTorch`, () => kx.tidy(() => {
      const [da, db, dbias] = kx.grad(([a, b, bias]) => loss(fx.get(`${c.name}.w`), flags(c))(a!, b!, bias), operands(c));
      expectClose(da!, fx.get(`${c.name}.da`), tolerance('float32', 'reduction'), `${c.name} da`);
      expectClose(db!, fx.get(`${c.name}.db`), tolerance('float32', 'reduction'), `${c.name} db`);
      if (c.bias) expectClose(dbias!, fx.get(`${c.name}.dbias`), tolerance('float32', 'reduction'), `${c.name} dbias`);
    }));
  }

  for (const name of ['trans_NN', 'trans_TT', 'trans_batch_NT', 'trans_batch_TN', 'trans_shared_NT', 'trans_shared_TN', 'batch_ones', 'bias_batch_TT', 'bias_linear']) {
    it(`${name} passes finite differences`, () => kx.tidy(() => {
      const c = cases.find((c) => c.name === name)!;
      expectGradOk(loss(fx.get(`${name}.w`), flags(c)), operands(c), {
        eps: 1e-2,
        atol: 1e-3,
        rtol: 1e-3,
      });
    }));
  }

  it('runs for half operands and matches the float32 gradient within half precision', () => kx.tidy(() => {
    const a = randomTensor([2, 5, 8], 3);
    const b = randomTensor([8, 4], 4);
    const w = randomTensor([2, 5, 4], 5);
    const [da32, db32] = kx.grad(([x, y]) => loss(w, {})(x!, y!), [a, b]);
    const ah = kx.cast(a, 'bfloat16');
    const bh = kx.cast(b, 'bfloat16');
    const wh = kx.cast(w, 'bfloat16');
    const [dah, dbh] = kx.grad(([x, y]) => kx.sum(kx.mul(kx.matmul(x!, y!), wh)), [ah, bh]);
    expect(dah!.dtype).toBe('bfloat16');
    // Inputs and w are rounded to bfloat16 too (observed ≈ 4.5e-3, the bound is 4 epsilons).
    expectClose(dah!, da32!.toFloat32Array(), tolerance('bfloat16', 'reduction'));
    expectClose(dbh!, db32!.toFloat32Array(), tolerance('bfloat16', 'reduction'));
    kx.dispose([a, b, w, da32!, db32!, ah, bh, wh, dah!, dbh!]);
  }));
});

describe('matmul edge cases', () => {
  it('an empty inner dimension gives zeros; empty outer dimensions give empty results', () => kx.tidy(() => {
    const z = kx.matmul(kx.zeros([2, 0]), kx.zeros([0, 3]));
    expect(z.shape).toEqual([2, 3]);
    expect(Array.from(z.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
    const e = kx.matmul(kx.zeros([4, 0, 5]), kx.zeros([5, 3]));
    expect(e.shape).toEqual([4, 0, 3]);
    const h = kx.matmul(kx.zeros([3, 0], { dtype: 'float16' }), kx.zeros([0, 2], { dtype: 'float16' }));
    expect(Array.from(h.toFloat32Array())).toEqual([0, 0, 0, 0, 0, 0]);
    kx.dispose([z, e, h]);
  }));

  it('with a bias, an empty inner dimension gives the bias in every row', () => kx.tidy(() => {
    const y = kx.matmul(kx.zeros([2, 2, 0]), kx.zeros([0, 3]), { bias: kx.tensor([1, -2, 3]) });
    expect(y.shape).toEqual([2, 2, 3]);
    expect(Array.from(y.toFloat32Array())).toEqual([1, -2, 3, 1, -2, 3, 1, -2, 3, 1, -2, 3]);
  }));

  it('the bias epilogue equals matmul followed by add, within a rounding', () => kx.tidy(() => {
    // sgemm accumulating onto the bias adds it before the products' sum is rounded, so compare
    // with a tolerance of one rounding, and check the exact path where the products are exact.
    const x = randomTensor([3, 17, 24], 21);
    const w = randomTensor([40, 24], 22);
    const b = randomTensor([40], 23);
    expectClose(kx.matmul(x, w, { transB: true, bias: b }), kx.add(kx.matmul(x, w, { transB: true }), b).toFloat32Array(), 1e-6);
    const ints = kx.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const eye = kx.tensor([1, 0, 0, 1, 0, 0], [3, 2]);
    expect(Array.from(kx.matmul(ints, eye, { bias: kx.tensor([10, 20]) }).toFloat32Array())).toEqual([11, 22, 14, 25]);
  }));

  it('a batch of many small products (parallel over the batch) equals per-matrix products', () => kx.tidy(() => {
    const a = randomTensor([300, 3, 4], 11);
    const b = randomTensor([300, 4, 2], 12);
    const y = kx.matmul(a, b).toFloat32Array();
    const av = a.toFloat32Array();
    const bv = b.toFloat32Array();
    const want = new Float32Array(300 * 6);
    for (let t = 0; t < 300; t++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 2; j++) {
          let s = 0;
          for (let p = 0; p < 4; p++) s += av[t * 12 + i * 4 + p]! * bv[t * 8 + p * 2 + j]!;
          want[t * 6 + i * 2 + j] = s;
        }
      }
    }
    expect(maxRelError(y, want)).toBeLessThanOrEqual(1e-5);
    kx.dispose([a, b]);
  }));
});

describe('matmul errors', () => {
  const a = randomTensor([3, 4], 1);
  const b = randomTensor([4, 5], 2);
  afterAll(() => kx.dispose([a, b]));

  it('rejects 1-D operands with E_SHAPE (reshape vectors to matrices)', () => kx.tidy(() => {
    const v = randomTensor([4], 3);
    expectCode(() => kx.matmul(a, v), 'E_SHAPE');
    expectCode(() => kx.matmul(v, b), 'E_SHAPE');
    expectCode(() => kx.runKernel('matmul', [v, b]), 'E_SHAPE');
    v.dispose();
  }));

  it('rejects inner-dimension mismatches and non-broadcasting batches with E_SHAPE', () => kx.tidy(() => {
    expectCode(() => kx.matmul(a, a), 'E_SHAPE');
    expectCode(() => kx.matmul(a, b, { transA: true }), 'E_SHAPE');
    expectCode(() => kx.runKernel('matmul', [a, a], { transA: false }), 'E_SHAPE');
    const x = randomTensor([2, 3, 4], 4);
    const y = randomTensor([3, 4, 5], 5);
    expectCode(() => kx.matmul(x, y), 'E_SHAPE');
    expectCode(() => kx.runKernel('matmul', [x, y]), 'E_SHAPE');
    kx.dispose([x, y]);
  }));

  it('runs without the optional bias input, and rejects a missing operand with E_ARG', () => kx.tidy(() => {
    expect(kx.runKernel('matmul', [a, b])[0]!.shape).toEqual([3, 5]);
    expectCode(() => kx.runKernel('matmul', [a]), 'E_ARG');
    expect(() => kx.runKernel('matmul', [a])).toThrow('matmul: expected 2 to 3 inputs, got 1');
    expectCode(() => kx.runKernel('matmul', [a, b, null, null]), 'E_ARG');
  }));

  it('rejects a bias that is not a vector of the output width and dtype with E_SHAPE', () => kx.tidy(() => {
    for (const bias of [randomTensor([4], 6), randomTensor([1, 5], 7), kx.cast(randomTensor([5], 8), 'float16')]) {
      expectCode(() => kx.matmul(a, b, { bias }), 'E_SHAPE');
      expectCode(() => kx.runKernel('matmul', [a, b, bias]), 'E_SHAPE');
    }
  }));

  it('rejects mixed or integer dtypes with E_DTYPE', () => kx.tidy(() => {
    const h = kx.cast(b, 'float16');
    const i = kx.cast(b, 'int32');
    expectCode(() => kx.matmul(a, h), 'E_DTYPE');
    expectCode(() => kx.runKernel('matmul', [a, h]), 'E_DTYPE');
    expectCode(() => kx.matmul(kx.cast(a, 'int32'), i), 'E_DTYPE');
    kx.dispose([h, i]);
  }));
});
