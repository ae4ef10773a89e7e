import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('embedding_rope');
afterAll(() => kx.dispose(fx.tensors));

type RopeCase = { name: string; op: string; shape: number[]; positions: boolean; dtype: kx.DType };
const cases = (fx.cases as unknown as RopeCase[]).filter((c) => c.op === 'rope');

function ints(values: number[], shape?: number[]): kx.Tensor {
  return kx.tensor(Int32Array.from(values), shape ?? [values.length]);
}

describe('rope: TEST-VECTORS.md (q = [1, 2, 3, 4], D = 4)', () => {
  const want: Record<number, number[]> = {
    0: [1, 2, 3, 4],
    1: [-1.14264, 1.922076, 2.959851, 4.0298],
    2: [-2.234742, 0.077004, 2.919405, 4.059196],
    7: [-0.560071, 2.164791, 2.712882, 4.200033],
  };
  it('rotates q at m = 0, 1, 2, 7 to the printed values', () => {
    const q = kx.tensor([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], [4, 4]);
    const pos = ints([0, 1, 2, 7]);
    const y = kx.rope(q, { positions: pos }).toFloat32Array();
    [0, 1, 2, 7].forEach((m, r) => {
      want[m]!.forEach((v, j) => expect(Math.abs(y[r * 4 + j]! - v)).toBeLessThanOrEqual(1e-6));
    });
    // The default positions are 0..T−1.
    const yd = kx.rope(kx.tensor([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], [3, 4])).toFloat32Array();
    [0, 1, 2].forEach((m, r) => want[m]!.forEach((v, j) => expect(Math.abs(yd[r * 4 + j]! - v)).toBeLessThanOrEqual(1e-6)));
    kx.dispose([q, pos]);
  });

  it('scores are relative: <R_5 q, R_2 k> = <R_13 q, R_10 k> = 7.982131589', () => {
    const score = (m: number, n: number) => {
      const q = kx.rope(kx.tensor([1, 2, 3, 4], [1, 4]), { positions: ints([m]) }).toFloat32Array();
      const k = kx.rope(kx.tensor([0.5, -1, 2, 0.25], [1, 4]), { positions: ints([n]) }).toFloat32Array();
      return q.reduce((a, v, i) => a + v * k[i]!, 0);
    };
    expect(Math.abs(score(5, 2) - 7.982131589)).toBeLessThan(5e-6);
    expect(Math.abs(score(13, 10) - 7.982131589)).toBeLessThan(5e-6);
  });

  it('⟨R_m q, R_n k⟩ depends only on n − m (D = 64, random q, k)', () => {
    const q = randomTensor([1, 64], 1);
    const k = randomTensor([1, 64], 2);
    const dot = (m: number, n: number) => {
      const a = kx.rope(q, { positions: ints([m]) }).toFloat32Array();
      const b = kx.rope(k, { positions: ints([n]) }).toFloat32Array();
      return a.reduce((s, v, i) => s + v * b[i]!, 0);
    };
    for (const delta of [-7, 0, 3, 40]) {
      const ref = dot(0, delta);
      for (const m of [1, 5, 17, 60]) expect(Math.abs(dot(m, m + delta) - ref)).toBeLessThan(2e-5);
    }
    // and it does change with n − m
    expect(Math.abs(dot(0, 3) - dot(0, 4))).toBeGreaterThan(1e-3);
    kx.dispose([q, k]);
  });
});

describe('rope vs the PyTorch interleaved formula', () => {
  for (const c of cases) {
    const label = `${c.name}: ${c.dtype} [${c.shape.join(', ')}]${c.positions ? ', custom positions' : ''}`;
    it(`${label} forward`, () => {
      const positions = c.positions ? fx.get(`${c.name}.positions`) : undefined;
      const y = kx.rope(fx.get(`${c.name}.x`), { positions, layout: 'interleaved' });
      expect(y.dtype).toBe(c.dtype);
      expectClose(y, fx.get(`${c.name}.y`), tolerance(c.dtype), c.name);
      y.dispose();
    });
    it(`${label} gradient of sum(y * w)`, () => {
      const positions = c.positions ? fx.get(`${c.name}.positions`) : undefined;
      const w = fx.get(`${c.name}.w`);
      const [dx] = kx.grad(([x]) => kx.sum(kx.mul(kx.rope(x!, { positions }), w)), [fx.get(`${c.name}.x`)]);
      expectClose(dx!, fx.get(`${c.name}.dx`), tolerance(c.dtype), `${c.name} dx`);
      dx!.dispose();
    });
  }
});

describe('rope gradient and inverse', () => {
  it('matches finite differences with broadcast custom positions', () => {
    const x = randomTensor([2, 3, 4, 6], 5);
    const w = randomTensor([2, 3, 4, 6], 6);
    const pos = ints([0, 9, 2, 300, 7, 1, 1, 50], [2, 1, 4]);
    expectGradOk((xx) => kx.sum(kx.mul(kx.rope(xx!, { positions: pos }), w)), [x], { eps: 1e-2, atol: 1e-4, rtol: 1e-3 });
    kx.dispose([x, w, pos]);
  });

  it('inverse undoes the rotation; the inverse is differentiable too', () => {
    const x = randomTensor([3, 5, 32], 7);
    const pos = ints([4, 100, 7, 2048, 1]);
    const back = kx.rope(kx.rope(x, { positions: pos }), { positions: pos, inverse: true });
    expectClose(back, x, 1e-6, 'round trip');
    const w = randomTensor([3, 5, 32], 8);
    expectGradOk((xx) => kx.sum(kx.mul(kx.rope(xx!, { positions: pos, inverse: true }), w)), [x], { eps: 1e-2, atol: 1e-4, rtol: 1e-3 });
    kx.dispose([x, pos, back, w]);
  });
});

describe('rope errors', () => {
  const x = randomTensor([2, 3, 4], 1);
  afterAll(() => x.dispose());

  it('rejects an odd D (E_SHAPE), also natively, and a rank-1 x', () => {
    const odd = randomTensor([3, 5], 2);
    expectCode(() => kx.rope(odd), 'E_SHAPE');
    expectCode(() => kx.runKernel('rope', [odd, null]), 'E_SHAPE');
    const flat = kx.ones([4]);
    expectCode(() => kx.rope(flat), 'E_SHAPE');
    expectCode(() => kx.runKernel('rope', [flat, null]), 'E_SHAPE');
    kx.dispose([odd, flat]);
  });

  it('rejects an unknown layout and a non-boolean inverse (E_ARG)', () => {
    expectCode(() => kx.rope(x, { layout: 'rotate_half' as 'interleaved' }), 'E_ARG');
    expectCode(() => kx.rope(x, { inverse: 1 as unknown as boolean }), 'E_ARG');
  });

  it('rejects float positions (E_DTYPE) and positions that do not broadcast (E_SHAPE), also natively', () => {
    const fpos = kx.tensor([0, 1, 2]);
    expectCode(() => kx.rope(x, { positions: fpos }), 'E_DTYPE');
    expectCode(() => kx.runKernel('rope', [x, fpos]), 'E_DTYPE');
    const p4 = ints([0, 1, 2, 3]);
    const p3d = ints([0, 1, 2, 0, 1, 2], [1, 2, 3]);
    const p2x2 = ints([0, 1, 2, 3, 4, 5], [3, 2]);
    for (const p of [p4, p3d, p2x2]) {
      expectCode(() => kx.rope(x, { positions: p }), 'E_SHAPE');
      expectCode(() => kx.runKernel('rope', [x, p]), 'E_SHAPE');
    }
    kx.dispose([fpos, p4, p3d, p2x2]);
  });
});
