import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, maxRelError, randomTensor } from './helpers.js';

/** A random skew-symmetric float32 [d, d]: A − Aᵀ. */
function randomSkew(d: number, seed: number, scale = 0.5): kx.Tensor {
  const a = randomTensor([d, d], seed, scale).toFloat32Array();
  return kx.tensor(Float32Array.from({ length: d * d }, (_, k) => a[k]! - a[(k % d) * d + Math.floor(k / d)]!), [d, d]);
}

function mm(a: Float64Array, b: Float64Array, d: number, transA = false): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += (transA ? a[k * d + i]! : a[i * d + k]!) * b[k * d + j]!;
      out[i * d + j] = s;
    }
  return out;
}

/** exp(a) in float64 by scaling and squaring a Taylor series (independent of the decomposition). */
function expmTaylor(a: Float64Array, d: number): Float64Array {
  const norm = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0) * d;
  const squarings = Math.max(0, Math.ceil(Math.log2(norm)) + 1);
  const s = a.map((v) => v / 2 ** squarings);
  let term: Float64Array = Float64Array.from({ length: d * d }, (_, k) => (k % (d + 1) === 0 ? 1 : 0));
  const sum = Float64Array.from(term);
  for (let n = 1; n < 30; n++) {
    term = mm(term, s, d).map((v) => v / n);
    term.forEach((v, k) => (sum[k] += v));
  }
  let r: Float64Array = sum;
  for (let k = 0; k < squarings; k++) r = mm(r, r, d);
  return r;
}

const maxDiff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('generalRope: exp(nB) through the orthogonal block-diagonalisation', () => {
  for (const [d, seed] of [[8, 1], [6, 2], [16, 3]] as const) {
    it(`d = ${d}: P is orthogonal, P Λ Pᵀ = B, θ descending`, () => {
      const b = randomSkew(d, seed);
      const g = kx.generalRope(b);
      const eye = Float64Array.from({ length: d * d }, (_, k) => (k % (d + 1) === 0 ? 1 : 0));
      expect(maxDiff(mm(g.p, g.p, d, true), eye)).toBeLessThan(1e-12);
      const lam = new Float64Array(d * d);
      g.theta.forEach((t, i) => {
        lam[(2 * i + 1) * d + 2 * i] = t;
        lam[2 * i * d + 2 * i + 1] = -t;
      });
      const pt = Float64Array.from({ length: d * d }, (_, k) => g.p[(k % d) * d + Math.floor(k / d)]!);
      const bm = Float64Array.from(b.toFloat32Array());
      expect(maxDiff(mm(mm(g.p, lam, d), pt, d), bm)).toBeLessThan(2e-6);
      for (let i = 1; i < d / 2; i++) expect(g.theta[i]!).toBeLessThanOrEqual(g.theta[i - 1]!);
      b.dispose();
    });

    it(`d = ${d}: exp(nB) = Taylor exp(nB), and R_mᵀ R_n = R_{n−m} to 1e-6 (float64)`, () => {
      const b = randomSkew(d, seed + 10);
      const g = kx.generalRope(b);
      const bm = Float64Array.from(b.toFloat32Array());
      for (const n of [1, 3, -2]) expect(maxDiff(g.expm(n), expmTaylor(bm.map((v) => v * n), d))).toBeLessThan(1e-5);
      for (const [m, n] of [[0, 5], [3, 11], [17, 4], [100, 163]]) {
        expect(maxDiff(mm(g.expm(m), g.expm(n), d, true), g.expm(n - m))).toBeLessThan(1e-6);
      }
      b.dispose();
    });
  }

  it('a rank-deficient B (a null space) and a rotated standard RoPE generator recover their θ', () => {
    // B = Q Λ Qᵀ with θ = 10000^(−2i/d) for i < 3 and a zero block, Q orthogonal (from eigh of a random symmetric matrix)
    const d = 8;
    const want = [...kx.ropeFrequencies(6), 0];
    const r = randomTensor([d, d], 30).toFloat32Array();
    const sym = kx.tensor(Float32Array.from({ length: d * d }, (_, k) => r[k]! + r[(k % d) * d + Math.floor(k / d)]!), [d, d]);
    const q = Float64Array.from(kx.linalg.eigh(sym).vectors.toFloat32Array());
    const lam = new Float64Array(d * d);
    want.forEach((t, i) => {
      lam[(2 * i + 1) * d + 2 * i] = t;
      lam[2 * i * d + 2 * i + 1] = -t;
    });
    const qt = Float64Array.from({ length: d * d }, (_, k) => q[(k % d) * d + Math.floor(k / d)]!);
    const b64 = mm(mm(q, lam, d), qt, d);
    // exactly skew-symmetric in float32: the upper triangle mirrored
    const b = kx.tensor(Float32Array.from({ length: d * d }, (_, k) => {
      const [i, j] = [Math.floor(k / d), k % d];
      return i <= j ? b64[k]! : -Math.fround(b64[j * d + i]!);
    }), [d, d]);
    const g = kx.generalRope(b);
    want.forEach((t, i) => expect(Math.abs(g.theta[i]! - t)).toBeLessThan(2e-6));
    kx.dispose([sym, b]);
  });
});

describe('§6.2: standard RoPE with W_q\' = Pᵀ W_q, W_k\' = Pᵀ W_k gives the scores of exp(nB)', () => {
  it('random B, W_q, W_k: the scores agree to 1e-5, and apply matches exp(nB) computed directly', () => {
    const [d, din, T] = [8, 12, 9];
    const b = randomSkew(d, 41);
    const wq = randomTensor([d, din], 42, 0.3);
    const wk = randomTensor([d, din], 43, 0.3);
    const x = randomTensor([T, din], 44);
    const g = kx.generalRope(b);
    const q = kx.matmul(x, kx.transpose(wq));
    const k = kx.matmul(x, kx.transpose(wk));
    const general = kx.matmul(g.apply(q), kx.transpose(g.apply(k)));
    // the definition, in float64: (exp(mB) q_m)ᵀ (exp(nB) k_n)
    const q64 = Float64Array.from(q.toFloat32Array());
    const k64 = Float64Array.from(k.toFloat32Array());
    const bm = Float64Array.from(b.toFloat32Array());
    const rot = (v: Float64Array, t: number) => {
      const e = expmTaylor(bm.map((z) => z * t), d);
      return Float64Array.from({ length: d }, (_, i) => e.slice(i * d, i * d + d).reduce((s, z, j) => s + z * v[t * d + j]!, 0));
    };
    const direct = new Float32Array(T * T);
    for (let m = 0; m < T; m++) for (let n = 0; n < T; n++) direct[m * T + n] = rot(q64, m).reduce((s, z, i) => s + z * rot(k64, n)[i]!, 0);
    expect(maxRelError(general, direct)).toBeLessThan(1e-5);
    // standard interleaved RoPE with the θ_i of B and the converted projections
    const freq = g.frequencies();
    const q2 = kx.rope(kx.matmul(x, kx.transpose(g.convertProjection(wq))), { frequencies: freq });
    const k2 = kx.rope(kx.matmul(x, kx.transpose(g.convertProjection(wk))), { frequencies: freq });
    const standard = kx.matmul(q2, kx.transpose(k2));
    expect(maxRelError(standard, general)).toBeLessThan(1e-5);
    // a bias converts the same way
    const bias = randomTensor([d], 45);
    expectClose(g.convertProjection(bias), kx.matmul(kx.tensor(Float32Array.from(g.p.map((_, i) => g.p[(i % d) * d + Math.floor(i / d)]!)), [d, d]), kx.reshape(bias, [d, 1])).reshape([d]), 1e-6);
    kx.dispose([b, wq, wk, x, bias]);
  });

  it('apply with positions and offset is exp(p·B) per row; differentiable in x', () => {
    const d = 6;
    const b = randomSkew(d, 50);
    const g = kx.generalRope(b);
    const x = randomTensor([2, 4, d], 51);
    const pos = kx.tensor(Int32Array.from([3, 0, 9, 1]), [4]);
    const y = g.apply(x, { positions: pos, offset: 2 }).toFloat32Array();
    const xs = x.toFloat32Array();
    [3, 0, 9, 1].forEach((p, t) => {
      const e = g.expm(p + 2);
      for (let bi = 0; bi < 2; bi++)
        for (let i = 0; i < d; i++) {
          const want = e.slice(i * d, i * d + d).reduce((s, z, j) => s + z * xs[(bi * 4 + t) * d + j]!, 0);
          expect(Math.abs(y[(bi * 4 + t) * d + i]! - want)).toBeLessThan(2e-5);
        }
    });
    const w = randomTensor([2, 4, d], 52);
    expectGradOk((xx) => kx.sum(kx.mul(g.apply(xx!, { positions: pos }), w)), [x], { eps: 1e-2, atol: 1e-4, rtol: 1e-3 });
    kx.dispose([b, x, pos, w]);
  });

  it('errors: not skew-symmetric (E_ARG), odd or non-square (E_SHAPE), not float32 (E_DTYPE), wrong sizes (E_SHAPE)', () => {
    expectCode(() => kx.generalRope(kx.tensor([1, 2, 3, 4], [2, 2])), 'E_ARG');
    expectCode(() => kx.generalRope(kx.tensor([0, 1, -1, 0], [2, 2]).cast('float16')), 'E_DTYPE');
    expectCode(() => kx.generalRope(kx.zeros([3, 3])), 'E_SHAPE');
    expectCode(() => kx.generalRope(kx.zeros([2, 4])), 'E_SHAPE');
    expectCode(() => kx.generalRope(kx.tensor([0, NaN, NaN, 0], [2, 2])), 'E_ARG');
    const g = kx.generalRope(randomSkew(4, 60));
    expectCode(() => g.apply(kx.zeros([3, 6])), 'E_SHAPE');
    expectCode(() => g.convertProjection(kx.zeros([6, 2])), 'E_SHAPE');
  });
});
