import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('rope');
afterAll(() => kx.dispose(fx.tensors));

type Case = { name: string; shape: number[]; positions: boolean; options: kx.RopeOptions; dtype: kx.DType };
const cases = fx.cases as unknown as Case[];

function ints(values: number[], shape?: number[]): kx.Tensor {
  return kx.tensor(Int32Array.from(values), shape ?? [values.length]);
}

function maxAbsDiff(a: kx.Tensor, b: kx.Tensor): number {
  const x = a.toFloat32Array();
  const y = b.toFloat32Array();
  expect(x.length).toBe(y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}

describe('rope options vs PyTorch (the NeoX/LLaMA rotate-half formula, partial rotary, base, offset, scaling)', () => {
  for (const c of cases) {
    const label = `${c.name}: ${c.dtype} [${c.shape.join(', ')}] ${JSON.stringify(c.options)}`;
    const opts = (): kx.RopeOptions => ({ ...c.options, positions: c.positions ? fx.get(`${c.name}.positions`) : null });
    it(`${label} forward`, () => {
      const y = kx.rope(fx.get(`${c.name}.x`), opts());
      expect(y.dtype).toBe(c.dtype);
      // float32: within 1e-6 absolutely of the float64-evaluated reference
      if (c.dtype === 'float32') expect(maxAbsDiff(y, fx.get(`${c.name}.y`))).toBeLessThanOrEqual(1e-6);
      else expectClose(y, fx.get(`${c.name}.y`), tolerance(c.dtype), c.name);
      y.dispose();
    });
    it(`${label} gradient of sum(y * w)`, () => {
      const w = fx.get(`${c.name}.w`);
      const [dx] = kx.grad(([x]) => kx.sum(kx.mul(kx.rope(x!, opts()), w)), [fx.get(`${c.name}.x`)]);
      if (c.dtype === 'float32') expect(maxAbsDiff(dx!, fx.get(`${c.name}.dx`))).toBeLessThanOrEqual(1e-6);
      else expectClose(dx!, fx.get(`${c.name}.dx`), tolerance(c.dtype), `${c.name} dx`);
      dx!.dispose();
    });
  }
});

describe('rope gradients by finite differences', () => {
  it('in x: rotate-half, partial rotary, offset and linear scaling, inverse', () => {
    const x = randomTensor([2, 3, 5, 10], 3);
    const w = randomTensor([2, 3, 5, 10], 4);
    const pos = ints([4, 0, 90, 7, 33], [5]);
    for (const o of [
      { layout: 'rotate-half', rotaryDim: 6, offset: 5, scaling: { type: 'linear', factor: 3 } },
      { layout: 'interleaved', rotaryDim: 8, base: 50, inverse: true },
      { layout: 'rotate-half', scaling: { type: 'ntk', factor: 4 }, positions: pos },
    ] as kx.RopeOptions[]) {
      expectGradOk((xx) => kx.sum(kx.mul(kx.rope(xx!, o), w)), [x], { eps: 1e-2, atol: 1e-4, rtol: 1e-3 });
    }
    kx.dispose([x, w, pos]);
  });

  it('in explicit frequencies, for both layouts, positions, offset, scaling and the inverse', () => {
    const x = randomTensor([2, 4, 8], 5);
    const w = randomTensor([2, 4, 8], 6);
    const freq = kx.tensor([0.9, 0.31, 0.05]);
    const pos = ints([1, 3, 0, 6, 2, 5, 4, 7], [2, 4]);
    for (const o of [
      { layout: 'interleaved', rotaryDim: 6 },
      { layout: 'rotate-half', rotaryDim: 6, offset: 2, scaling: { type: 'linear', factor: 2 } },
      { layout: 'rotate-half', rotaryDim: 6, positions: pos, inverse: true },
    ] as kx.RopeOptions[]) {
      expectGradOk((xx, ff) => kx.sum(kx.mul(kx.rope(xx!, { ...o, frequencies: ff! }), w)), [x, freq], {
        eps: 1e-2,
        atol: 2e-3,
        rtol: 2e-3,
      });
    }
    kx.dispose([x, w, freq, pos]);
  });
});

describe('rope identities', () => {
  it('explicit frequencies base^(−2i/r) give the default rotation', () => {
    const x = randomTensor([3, 7, 12], 7);
    const freq = kx.tensor(Float32Array.from(kx.ropeFrequencies(8, 500)));
    expectClose(kx.rope(x, { rotaryDim: 8, frequencies: freq, layout: 'rotate-half' }), kx.rope(x, { rotaryDim: 8, base: 500, layout: 'rotate-half' }), 1e-6);
    kx.dispose([x, freq]);
  });

  it('decoding one token at a time with offset t equals rotating the whole sequence', () => {
    const x = randomTensor([2, 3, 9, 16], 8);
    for (const layout of ['interleaved', 'rotate-half'] as const) {
      const full = kx.rope(x, { layout, offset: 4 }).toFloat32Array();
      for (let t = 0; t < 9; t++) {
        const step = kx.rope(kx.slice(x, [0, 0, t, 0], [2, 3, 1, 16]), { layout, offset: 4 + t }).toFloat32Array();
        const want = kx.slice(kx.tensor(full, [2, 3, 9, 16]), [0, 0, t, 0], [2, 3, 1, 16]).toFloat32Array();
        expect(Array.from(step)).toEqual(Array.from(want));
      }
    }
    x.dispose();
  });

  it('a KV-cached decoder: the new query at its offset over the cached keys gives the causal attention row', () => {
    const [T, D] = [7, 8];
    const q = randomTensor([1, 2, T, D], 9);
    const k = randomTensor([1, 2, T, D], 10);
    const v = randomTensor([1, 2, T, D], 11);
    const full = kx.attention(kx.rope(q, { layout: 'rotate-half' }), kx.rope(k, { layout: 'rotate-half' }), v, { causal: true });
    let cache: kx.Tensor | null = null;
    for (let t = 0; t < T; t++) {
      const kt = kx.rope(kx.slice(k, [0, 0, t, 0], [1, 2, 1, D]), { layout: 'rotate-half', offset: t });
      cache = cache ? kx.concat([cache, kt], 2) : kt;
      const qt = kx.rope(kx.slice(q, [0, 0, t, 0], [1, 2, 1, D]), { layout: 'rotate-half', offset: t });
      const out = kx.attention(qt, cache, kx.slice(v, [0, 0, 0, 0], [1, 2, t + 1, D]));
      expectClose(out, kx.slice(full, [0, 0, t, 0], [1, 2, 1, D]), 1e-6, `step ${t}`);
    }
    kx.dispose([q, k, v, full]);
  });

  it('the layouts differ by ropeLayoutPermutation: rope_rh(x[perm]) = rope_il(x)[perm], partial rotary too', () => {
    const [D, r] = [10, 6];
    const perm = kx.ropeLayoutPermutation(D, r);
    expect(perm).toEqual([0, 2, 4, 1, 3, 5, 6, 7, 8, 9]);
    const x = randomTensor([5, D], 12);
    const xs = x.toFloat32Array();
    const permuted = (a: Float32Array) => Float32Array.from({ length: a.length }, (_, k) => a[Math.floor(k / D) * D + perm[k % D]!]!);
    const rh = kx.rope(kx.tensor(permuted(xs), [5, D]), { layout: 'rotate-half', rotaryDim: r, offset: 3 });
    const il = kx.rope(x, { layout: 'interleaved', rotaryDim: r, offset: 3 });
    expect(Array.from(rh.toFloat32Array())).toEqual(Array.from(permuted(il.toFloat32Array())));
    kx.dispose([x, rh, il]);
  });

  it('NTK scaling raises the base by factor^(r/(r−2)); linear scaling divides positions', () => {
    expect(kx.ropeScaledBase(10000, 64, { type: 'ntk', factor: 8 })).toBeCloseTo(10000 * 8 ** (64 / 62), 6);
    expect(kx.ropeScaledBase(10000, 64, { type: 'linear', factor: 8 })).toBe(10000);
    const x = randomTensor([6, 16], 13);
    const lin = kx.rope(x, { positions: ints([0, 4, 8, 12, 16, 20]), scaling: { type: 'linear', factor: 4 } });
    expectClose(lin, kx.rope(x, { positions: ints([0, 1, 2, 3, 4, 5]) }), 1e-6);
    kx.dispose([x, lin]);
  });
});

describe('rope option errors', () => {
  const x = randomTensor([2, 3, 8], 1);
  afterAll(() => x.dispose());

  it('rejects bad layouts, rotary dims, bases, scalings and offsets (E_ARG), also natively', () => {
    expectCode(() => kx.rope(x, { layout: 'neox' as 'interleaved' }), 'E_ARG');
    for (const rotaryDim of [3, 0, 10, 2.5]) {
      expectCode(() => kx.rope(x, { rotaryDim }), 'E_ARG');
      if (Number.isInteger(rotaryDim)) expectCode(() => kx.runKernel('rope', [x, null, null], { rotaryDim }), 'E_ARG');
    }
    for (const base of [0, -1, Infinity, NaN]) {
      expectCode(() => kx.rope(x, { base }), 'E_ARG');
      expectCode(() => kx.runKernel('rope', [x, null, null], { base }), 'E_ARG');
    }
    expectCode(() => kx.runKernel('rope', [x, null, null], { positionScale: 0 }), 'E_ARG');
    expectCode(() => kx.rope(x, { scaling: { type: 'yarn' as 'linear', factor: 2 } }), 'E_ARG');
    expectCode(() => kx.rope(x, { scaling: { type: 'linear', factor: 0 } }), 'E_ARG');
    expectCode(() => kx.rope(x, { rotaryDim: 2, scaling: { type: 'ntk', factor: 2 } }), 'E_ARG');
    expectCode(() => kx.rope(x, { offset: 1.5 }), 'E_ARG');
    expectCode(() => kx.rope(x, { offset: 2 ** 31 }), 'E_ARG');
    expectCode(() => kx.runKernel('rope', [x, null, null], { offset: 2 ** 31 }), 'E_ARG');
  });

  it('rejects odd D without a rotary dim (E_SHAPE) but rotates an odd D with an even rotaryDim', () => {
    const odd = randomTensor([3, 5], 2);
    expectCode(() => kx.rope(odd), 'E_SHAPE');
    const y = kx.rope(odd, { rotaryDim: 4 }).toFloat32Array();
    const xs = odd.toFloat32Array();
    for (let t = 0; t < 3; t++) expect(y[t * 5 + 4]).toBe(xs[t * 5 + 4]);
    odd.dispose();
  });

  it('rejects bad frequencies: not float32 (E_DTYPE), not [r/2] (E_SHAPE), beside a base (E_ARG), also natively', () => {
    const f3 = kx.tensor([1, 2, 3]);
    const f4 = kx.tensor([1, 2, 3, 4]);
    const fi = ints([1, 2, 3, 4]);
    const fh = f4.cast('float16');
    expectCode(() => kx.rope(x, { frequencies: f3 }), 'E_SHAPE');
    expectCode(() => kx.runKernel('rope', [x, null, f3]), 'E_SHAPE');
    expectCode(() => kx.rope(x, { frequencies: fh }), 'E_DTYPE');
    expectCode(() => kx.runKernel('rope', [x, null, fh]), 'E_DTYPE');
    expectCode(() => kx.rope(x, { frequencies: fi }), 'E_DTYPE');
    expectCode(() => kx.rope(x, { frequencies: f4, base: 10 }), 'E_ARG');
    kx.dispose([f3, f4, fi, fh]);
  });
});

describe('ropeDecayCurve (§6.1 long-range decay)', () => {
  it('is (d/2 + 1)/2 at distance 0, 1 for d = 2, and the closed form for d = 4', () => {
    const c128 = kx.ropeDecayCurve({ dim: 128, maxDistance: 10 });
    expect(c128.distance).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(c128.value[0]).toBeCloseTo(32.5, 12);
    for (const v of kx.ropeDecayCurve({ dim: 2, maxDistance: 50, step: 7 }).value) expect(v).toBeCloseTo(1, 12);
    // d = 4: |S_1| = 1, |S_2| = |e^{ir} + e^{irθ_1}| = 2|cos(r(1 − θ_1)/2)|
    const t1 = 100 ** -0.5;
    const c4 = kx.ropeDecayCurve({ dim: 4, base: 100, maxDistance: 30, step: 3 });
    c4.distance.forEach((r, k) => expect(c4.value[k]).toBeCloseTo((1 + 2 * Math.abs(Math.cos((r * (1 - t1)) / 2))) / 2, 12));
  });

  it('decays with distance for base 10000, d = 128 (the mean over each stretch of 250 falls)', () => {
    const { value } = kx.ropeDecayCurve({ dim: 128, maxDistance: 1000 });
    const mean = (a: number, b: number) => value.slice(a, b).reduce((s, v) => s + v, 0) / (b - a);
    expect(mean(0, 250)).toBeGreaterThan(mean(250, 500));
    expect(mean(250, 500)).toBeGreaterThan(mean(500, 750));
    expect(mean(500, 750)).toBeGreaterThan(mean(750, 1001));
  });

  it('rejects bad sizes (E_ARG)', () => {
    expectCode(() => kx.ropeDecayCurve({ dim: 3, maxDistance: 10 }), 'E_ARG');
    expectCode(() => kx.ropeDecayCurve({ dim: 4, maxDistance: 0 }), 'E_ARG');
    expectCode(() => kx.ropeDecayCurve({ dim: 4, maxDistance: 5, step: 1.5 }), 'E_ARG');
    expectCode(() => kx.ropeDecayCurve({ dim: 4, base: -1, maxDistance: 5 }), 'E_ARG');
  });
});
