/**
 * The Johnson–Lindenstrauss part of ALGORITHMS.md §7: the bounds against the numbers printed in
 * TEST-VECTORS.md; the lemma itself, empirically (at the bound's n, with fixed seeds, the trials
 * keeping every pair within (1 ± ε) against the stated probability ≥ 1 − 1/N); the LSH angle
 * estimate converging as n grows; randomised SVD against kx.linalg.svd; seeded reproducibility;
 * vector files; the errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import {
  InitRng,
  PROJECTION_KINDS,
  RandomProjection,
  embeddingDimensionBound,
  formatJlReport,
  jlDimension,
  jlDimensionBound,
  jlExistenceDimensionBound,
  jlFailureBound,
  jlInnerProductFailureBound,
  measureAngles,
  measureDistortion,
  normDeviationBound,
  npyBytes,
  orthogonalityBound,
  randomizedSvd,
  readVectors,
  runJl,
  writeVectors,
} from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-jl-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** rows × cols standard normals from a seed (the data, not a projection). */
function normals(rows: number, cols: number, seed: number): Float32Array {
  const rng = new InitRng(seed);
  return Float32Array.from({ length: rows * cols }, () => rng.normal());
}

function points(rows: number, cols: number, seed: number): kx.Tensor {
  return kx.tensor(normals(rows, cols, seed), [rows, cols]);
}

describe('the bounds (§7, TEST-VECTORS.md lines 31-33)', () => {
  it('print the numbers of the spec', () => {
    // JL: N=… eps=0.1: 24 lnN/eps^2=… ; 16 lnN/eps^2=… ; 8.33 lnN=…
    const printed: Array<[number, number, number, string]> = [
      [512, 14972, 9981, '52.0'],
      [10000, 22105, 14737, '76.7'],
      [1000000, 33157, 22105, '115.1'],
    ];
    for (const [N, bound24, bound16, rule] of printed) {
      expect(Math.round(jlDimensionBound(N, 0.1))).toBe(bound24);
      expect(Math.round(jlExistenceDimensionBound(N, 0.1))).toBe(bound16);
      expect(embeddingDimensionBound(N).toFixed(1)).toBe(rule);
    }
    // "ε = 0.1 ⇒ n > 1600 ln N"; "L = 512 ⇒ d ≳ 52"
    expect(jlExistenceDimensionBound(1234, 0.1) / Math.log(1234)).toBeCloseTo(1600, 9);
    expect(Math.round(embeddingDimensionBound(512))).toBe(52);
    // n > 24 ln N / ε²: the smallest integer above 14971.98
    expect(jlDimension(512, 0.1)).toBe(14972);
  });

  it('give the union-bound probabilities of §7', () => {
    expect(normDeviationBound(800, 0.2)).toBeCloseTo(2 * Math.exp(-0.04 * 800 / 8), 15);
    expect(orthogonalityBound(800, 0.2)).toBeCloseTo(2 * normDeviationBound(800, 0.2), 15);
    expect(normDeviationBound(1, 0.1)).toBe(1); // capped: a bound above 1 says nothing
    for (const N of [10, 512, 10000]) {
      for (const eps of [0.1, 0.3, 0.5]) {
        const n = jlDimension(N, eps);
        // at n > 24 ln N/ε²: success ≥ 1 − 1/N (distances), ≥ (N − 2)/N (inner products)
        expect(jlFailureBound(N, n, eps)).toBeLessThan(1 / N);
        // n − 1 ≤ 24 ln N/ε²: there the bound is at least N(N − 1)·N⁻³
        expect(jlFailureBound(N, n - 1, eps)).toBeGreaterThanOrEqual((N - 1) / N ** 2);
        expect(jlInnerProductFailureBound(N, n, eps)).toBeLessThan(2 / N);
        // at 16 ln N/ε² the failure bound is 1 − 1/N: success only ≥ 1/N
        const n16 = 16 * Math.log(N) / eps ** 2;
        expect(N * (N - 1) * Math.exp(-(eps ** 2) * n16 / 8)).toBeCloseTo(1 - 1 / N, 9);
        expect(jlFailureBound(N, Math.ceil(n16), eps)).toBeLessThanOrEqual(1 - 1 / N);
      }
    }
  });
});

describe('random projections', () => {
  it('have entries of variance 1/n (E‖Av‖² = ‖v‖²) in the stated patterns', () => {
    const m = 400;
    const n = 300;
    for (const kind of PROJECTION_KINDS) {
      const p = RandomProjection.create(m, n, { kind, seed: 7 });
      const a = p.matrix.toFloat32Array();
      p.dispose();
      expect(a.length).toBe(m * n);
      const meanSquare = a.reduce((s, v) => s + v * v, 0) / a.length;
      // within 4 standard errors: the relative variance of a mean of squares is (κ − 1)/size, with
      // κ = E[a⁴]/E[a²]² = 3 for a Gaussian and Achlioptas' entries, √m (1/density) for very sparse
      const kurtosis = kind === 'very-sparse' ? Math.sqrt(m) : 3;
      expect(Math.abs(meanSquare * n - 1)).toBeLessThan(4 * Math.sqrt((kurtosis - 1) / a.length));
      const mean = a.reduce((s, v) => s + v, 0) / a.length;
      expect(Math.abs(mean) * Math.sqrt(n * a.length)).toBeLessThan(4); // within 4 standard errors of 0
      const nonZero = a.filter((v) => v !== 0);
      if (kind === 'achlioptas') {
        expect(new Set(nonZero.map((v) => Math.abs(v)))).toEqual(new Set([Math.fround(Math.sqrt(3 / n))]));
        expect(Math.abs(nonZero.length / a.length - 1 / 3)).toBeLessThan(0.005);
      } else if (kind === 'very-sparse') {
        const s = Math.sqrt(m); // density 1/√m
        expect(new Set(nonZero.map((v) => Math.abs(v)))).toEqual(new Set([Math.fround(Math.sqrt(s / n))]));
        expect(Math.abs(nonZero.length / a.length - 1 / s)).toBeLessThan(0.003);
      } else {
        expect(nonZero.length).toBe(a.length);
        // Gaussian: the fourth moment 3σ⁴ tells it from a two-point or uniform law
        const fourth = a.reduce((s, v) => s + v ** 4, 0) / a.length;
        expect(Math.abs(fourth * n * n - 3)).toBeLessThan(0.1);
      }
    }
  });

  it('are reproducible: the same seed the same matrix, another seed another', () => {
    for (const kind of PROJECTION_KINDS) {
      const draw = (seed: number): Float32Array => {
        const p = RandomProjection.create(50, 40, { kind, seed });
        const a = p.matrix.toFloat32Array();
        p.dispose();
        return a;
      };
      const a = draw(3);
      expect(draw(3)).toEqual(a);
      const b = draw(4);
      expect(b.some((v, i) => v !== a[i])).toBe(true);
    }
  });

  it('project with one product; sign gives ±1 bits of that product', () => {
    const x = points(5, 30, 1);
    const g = RandomProjection.create(30, 64, { kind: 'gaussian', seed: 9 });
    const s = RandomProjection.create(30, 64, { kind: 'sign', seed: 9 });
    const y = g.project(x).toFloat32Array();
    const bits = s.project(x).toFloat32Array();
    expect(s.matrix.toFloat32Array()).toEqual(g.matrix.toFloat32Array()); // sign is the Gaussian matrix
    expect(Array.from(bits)).toEqual(Array.from(y, (v) => (v < 0 ? -1 : 1)));
    const reference = kx.matmul(x, g.matrix).toFloat32Array();
    expect(y).toEqual(reference);
    g.dispose();
    s.dispose();
    x.dispose();
  });
});

/** The fraction of `trials` seeds whose projection keeps every pair of x within (1 ± ε). */
function jlTrials(x: kx.Tensor, n: number, eps: number, kind: 'gaussian' | 'achlioptas' | 'very-sparse', trials: number): { successes: number; worst: number } {
  let successes = 0;
  let worst = 0;
  for (let seed = 0; seed < trials; seed++) {
    const d = kx.tidy(() => {
      const p = RandomProjection.create(x.shape[1]!, n, { kind, seed });
      return measureDistortion(x, p.project(x), eps);
    });
    if (d.withinEps === 1) successes++;
    worst = Math.max(worst, d.maxDistortion);
  }
  return { successes, worst };
}

describe('the JL statement, empirically', () => {
  // N points, n = the smallest integer above 24 ln N/ε²: each trial (a seed) must keep all N(N−1)/2
  // squared distances within (1 ± ε) with probability ≥ 1 − 1/N. With T trials, the chance of
  // fewer than T − 2 successes under that probability is below 1e-3 for these N and T.
  const cases = [
    { N: 24, m: 300, eps: 0.5, trials: 30 },
    { N: 16, m: 600, eps: 0.3, trials: 12 },
  ];
  for (const { N, m, eps, trials } of cases) {
    it(`holds at the bound's n for N = ${N}, ε = ${eps} (${trials} seeds each kind)`, () => {
      const n = jlDimension(N, eps);
      expect(n).toBe(Math.floor(24 * Math.log(N) / eps ** 2) + 1);
      const x = points(N, m, 100 + N);
      for (const kind of ['gaussian', 'achlioptas', 'very-sparse'] as const) {
        const { successes, worst } = jlTrials(x, n, eps, kind, trials);
        expect(successes / trials, `${kind}: worst |ratio − 1| ${worst}`).toBeGreaterThanOrEqual(1 - 1 / N);
        expect(successes).toBeGreaterThanOrEqual(trials - 2);
      }
      x.dispose();
    });
  }

  it("keeps unit vectors' inner products within ε (the inner-product form, probability ≥ (N − 2)/N)", () => {
    const N = 16;
    const eps = 0.5;
    const n = jlDimension(N, eps);
    const x = kx.tidy(() => {
      const raw = points(N, 200, 7);
      return kx.mul(raw, kx.rsqrt(kx.sum(kx.mul(raw, raw), 1, true))); // rows of norm 1
    });
    const before = kx.tidy(() => kx.matmul(x, x, { transB: true }).toFloat32Array());
    let successes = 0;
    let worst = 0;
    const trials = 12;
    for (let seed = 0; seed < trials; seed++) {
      const after = kx.tidy(() => {
        const y = RandomProjection.create(200, n, { seed }).project(x);
        return kx.matmul(y, y, { transB: true }).toFloat32Array();
      });
      let largest = 0;
      for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) largest = Math.max(largest, Math.abs(after[i * N + j]! - before[i * N + j]!));
      if (largest <= eps) successes++;
      worst = Math.max(worst, largest);
    }
    expect(successes / trials, `worst |⟨Av_i, Av_j⟩ − ⟨v_i, v_j⟩| ${worst}`).toBeGreaterThanOrEqual((N - 2) / N);
    expect(worst).toBeGreaterThan(0); // a projection, not the identity
    x.dispose();
  });

  it('fails far below the bound: the measurement sees violations', () => {
    const x = points(24, 300, 124);
    const { successes, worst } = jlTrials(x, 8, 0.5, 'gaussian', 10);
    expect(successes).toBeLessThan(3);
    expect(worst).toBeGreaterThan(0.5);
    x.dispose();
  });

  it('measures the same whatever the block size of the Gram matrices', () => {
    const x = points(37, 20, 5);
    const p = RandomProjection.create(20, 12, { seed: 1 });
    const y = p.project(x);
    const whole = measureDistortion(x, y, 0.3);
    const blocked = measureDistortion(x, y, 0.3, { chunkRows: 5 });
    expect(blocked.pairs).toBe((37 * 36) / 2);
    expect(blocked.withinEps).toBe(whole.withinEps);
    expect(blocked.maxDistortion).toBeCloseTo(whole.maxDistortion, 5);
    expect(blocked.meanDistortion).toBeCloseTo(whole.meanDistortion, 6);
    // a direct pair: rows 0 and 36 (different blocks)
    const xs = x.toFloat32Array();
    const ys = y.toFloat32Array();
    const sq = (v: Float32Array, d: number, i: number, j: number) => Array.from({ length: d }, (_, k) => (v[i * d + k]! - v[j * d + k]!) ** 2).reduce((a, b) => a + b);
    const ratio = sq(ys, 12, 0, 36) / sq(xs, 20, 0, 36);
    expect(blocked.minRatio - 1e-5).toBeLessThanOrEqual(ratio);
    expect(blocked.maxRatio + 1e-5).toBeGreaterThanOrEqual(ratio);
    p.dispose();
    kx.dispose([x, y]);
  });
});

describe('LSH: sign bits estimate angles', () => {
  // N points on a circle of the first two axes at angles kπ/N: pair angles spread over (0, π)
  const N = 16;
  const m = 32;
  const circle = new Float32Array(N * m);
  for (let i = 0; i < N; i++) {
    circle[i * m] = Math.cos((i * Math.PI) / N);
    circle[i * m + 1] = Math.sin((i * Math.PI) / N);
  }

  it('π·hamming/n converges to θ (errors ~ 1/√n); cos(sign vectors) does not converge to cos θ', () => {
    const x = kx.tensor(circle, [N, m]);
    const errors = [64, 1024, 16384].map((n) =>
      kx.tidy(() => {
        const p = RandomProjection.create(m, n, { kind: 'sign', seed: 11 });
        return measureAngles(x, p.project(x), 0.1);
      }),
    );
    const [small, , large] = errors as [ReturnType<typeof measureAngles>, unknown, ReturnType<typeof measureAngles>];
    // each bit differs w.p. θ/π: std(θ̂) = π√(p(1 − p)/n) ≤ π/(2√n) = 0.0123 rad at n = 16384
    expect(large.meanAngleError).toBeLessThan(0.02);
    expect(large.maxAngleError).toBeLessThan(0.06);
    expect(large.meanCosineError).toBeLessThan(0.02);
    expect(large.withinEps).toBe(1);
    expect(small.meanAngleError / large.meanAngleError).toBeGreaterThan(6); // √256 = 16 expected
    expect(errors[1]!.meanAngleError).toBeLessThan(small.meanAngleError);
    // §7's "cos(v_i, v_j) ≈ cos(sign(Av_i), sign(Av_j))" literally: the sign vectors' cosine tends
    // to 1 − 2θ/π, which is off by up to 0.21 between θ = 0 and π/2
    expect(large.meanSignCosineError).toBeGreaterThan(0.05);
    x.dispose();
  });
});

describe('randomised SVD (§7)', () => {
  // M [a, b] = U diag(σ) Vᵀ of rank 5 plus noise 1e-3
  function lowRankPlusNoise(a: number, b: number): kx.Tensor {
    const sigma = [10, 8, 6, 4, 2];
    return kx.tidy(() => {
      const u = kx.linalg.svd(points(a, 5, 21)).u;
      const v = kx.linalg.svd(points(b, 5, 22)).u;
      const noise = kx.mul(points(a, b, 23), 1e-3);
      return kx.add(kx.matmul(kx.mul(u, kx.tensor(sigma, [5])), v, { transB: true }), noise);
    });
  }
  const svdParts = (r: kx.linalg.SvdResult): kx.Tensor[] => [r.u, r.s, r.vh];
  const frobenius = (t: kx.Tensor): number => Math.sqrt(t.toFloat32Array().reduce((s, v) => s + v * v, 0));
  const residual = (m: kx.Tensor, r: kx.linalg.SvdResult): number =>
    kx.tidy(() => frobenius(kx.sub(m, kx.matmul(kx.mul(r.u, r.s), r.vh))));

  it('with the range finder matches kx.linalg.svd on a low-rank-plus-noise matrix', () => {
    const m = lowRankPlusNoise(120, 80);
    const exact = kx.linalg.svd(m);
    const k = 5;
    const best = kx.tidy(() => residual(m, { u: kx.slice(exact.u, [0, 0], [120, k]), s: kx.slice(exact.s, [0], [k]), vh: kx.slice(exact.vh, [0, 0], [k, 80]) }));
    const r = randomizedSvd(m, k, { powerIterations: 1, oversample: 5, seed: 3 });
    expect(r.u.shape).toEqual([120, k]);
    expect(r.vh.shape).toEqual([k, 80]);
    const s = r.s.toFloat32Array();
    const sExact = exact.s.toFloat32Array();
    for (let i = 0; i < k; i++) expect(Math.abs(s[i]! / sExact[i]! - 1)).toBeLessThan(1e-4);
    expect(residual(m, r)).toBeLessThan(1.02 * best);
    // u has orthonormal columns
    const gram = kx.tidy(() => kx.matmul(r.u, r.u, { transA: true }).toFloat32Array());
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) expect(Math.abs(gram[i * k + j]! - (i === j ? 1 : 0))).toBeLessThan(1e-5);
    // without power iterations it is worse, but still close
    const plain = randomizedSvd(m, k, { powerIterations: 0, oversample: 5, seed: 3 });
    expect(residual(m, plain)).toBeLessThan(3 * best);
    expect(residual(m, plain)).toBeGreaterThan(residual(m, r));
    kx.dispose([m, ...svdParts(exact), ...svdParts(r), ...svdParts(plain)]);
  });

  it("with §7's Gaussian Q: singular values within JL accuracy; orthonormalised, a random subspace", () => {
    const m = lowRankPlusNoise(40, 600);
    const sExact = kx.tidy(() => kx.linalg.svd(m).s.toFloat32Array());
    const k = 3;
    // l = 40 columns: the top singular values within ~2 standard deviations √(2/l)
    const gaussian = randomizedSvd(m, k, { oversample: 37, seed: 5 });
    const s = gaussian.s.toFloat32Array();
    for (let i = 0; i < k; i++) expect(Math.abs(s[i]! / sExact[i]! - 1)).toBeLessThan(0.35);
    // orthonormalised Q: M Q Qᵀ projects M's rows on a random 40-dimensional subspace of R^600,
    // so the singular values shrink by about √(40/600)
    const orthonormal = randomizedSvd(m, k, { oversample: 37, seed: 5, orthonormalize: true });
    const so = orthonormal.s.toFloat32Array();
    for (let i = 0; i < k; i++) expect(Math.abs(so[i]! / sExact[i]! / Math.sqrt(40 / 600) - 1)).toBeLessThan(0.35);
    // the same seed, the same result
    const again = randomizedSvd(m, k, { oversample: 37, seed: 5 });
    expect(again.s.toFloat32Array()).toEqual(s);
    kx.dispose([m, ...svdParts(gaussian), ...svdParts(orthonormal), ...svdParts(again)]);
  });

  it('is exact with an orthonormal Q as wide as M (Q Qᵀ = I)', () => {
    const m = points(30, 12, 8);
    const r = randomizedSvd(m, 12, { orthonormalize: true, seed: 2 });
    expect(residual(m, r) / frobenius(m)).toBeLessThan(1e-5);
    kx.dispose([m, ...svdParts(r)]);
  });
});

describe('runJl and formatJlReport', () => {
  it('project at the bound, measure all pairs or a seeded sample under maxPairs', () => {
    const x = points(40, 64, 2);
    const full = runJl(x, { eps: 0.5 });
    expect(full.projected.shape).toEqual([40, jlDimension(40, 0.5)]);
    expect(full.report.measuredRows).toBe(40);
    expect(full.report.distances!.pairs).toBe(780);
    expect(full.report.distances!.withinEps).toBe(1);
    expect(full.report.bound.failureProbability).toBeLessThan(1 / 40);
    const sampled = runJl(x, { eps: 0.5, dimension: 32, maxPairs: 10, seed: 4 });
    expect(sampled.report.measuredRows).toBe(5);
    expect(sampled.report.distances!.pairs).toBe(10);
    expect(runJl(x, { eps: 0.5, dimension: 32, maxPairs: 10, seed: 4 }).report).toEqual(sampled.report);
    const table = formatJlReport(full.report, 'x.npy');
    expect(table).toContain(`x.npy: 40 vectors of dimension 64 -> ${jlDimension(40, 0.5)} (gaussian, seed 0)`);
    expect(table).toContain('within (1 ± ε)     100.000%');
    const sign = runJl(x, { eps: 0.5, dimension: 256, kind: 'sign' });
    expect(sign.report.angles!.pairs).toBe(780);
    expect(sign.report.distances).toBeUndefined();
    expect(formatJlReport(sign.report)).toContain('mean |θ̂ − θ|');
    kx.dispose([x, full.projected, sampled.projected, sign.projected]);
  });
});

describe('vector files', () => {
  it('readVectors reads back what writeVectors wrote, and NumPy versions and dtypes', async () => {
    const x = points(6, 5, 3);
    for (const name of ['v.npy', 'v.safetensors']) {
      const file = path.join(tmp, name);
      await writeVectors(file, x);
      const back = readVectors(file);
      expect(back.shape).toEqual([6, 5]);
      expect(back.toFloat32Array()).toEqual(x.toFloat32Array());
      back.dispose();
    }
    // version 2.0 (a 4-byte header length), float64
    const header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    const padded = header + ' '.repeat(128 - 12 - header.length - 1) + '\n';
    const bytes = Buffer.alloc(128 + 48);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]).copy(bytes);
    bytes.writeUInt32LE(padded.length, 8);
    bytes.write(padded, 12, 'latin1');
    Buffer.from(new Float64Array([1, 2, 3, 4, 5, 6.5]).buffer).copy(bytes, 128);
    writeFileSync(path.join(tmp, 'f8.npy'), bytes);
    const f8 = readVectors(path.join(tmp, 'f8.npy'));
    expect(Array.from(f8.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(f8.shape).toEqual([2, 3]);
    kx.dispose([x, f8]);
  });

  it('name what is wrong with a file', async () => {
    expectCode(() => readVectors(path.join(tmp, 'missing.npy')), 'E_IO');
    expectCode(() => readVectors(path.join(tmp, 'v.txt')), 'E_ARG');
    const write = (name: string, data: Uint8Array): string => {
      const file = path.join(tmp, name);
      writeFileSync(file, data);
      return file;
    };
    expectCode(() => readVectors(write('text.npy', Buffer.from('not numpy at all'))), 'E_FORMAT');
    const good = npyBytes(new Float32Array(6), [2, 3]);
    expectCode(() => readVectors(write('short.npy', good.subarray(0, good.length - 4))), 'E_FORMAT');
    const ints = Buffer.from(good);
    ints.write("'<i4'", ints.indexOf("'<f4'"), 'latin1');
    expectCode(() => readVectors(write('ints.npy', ints)), 'E_FORMAT');
    expectCode(() => readVectors(write('rank3.npy', npyBytes(new Float32Array(8), [2, 2, 2]))), 'E_SHAPE');
    const two = path.join(tmp, 'two.safetensors');
    await kx.io.saveSafetensors(two, { a: kx.zeros([2, 2]), b: kx.zeros([2, 2]) });
    expectCode(() => readVectors(two), 'E_FORMAT');
  });
});

describe('errors', () => {
  it('are typed, never NaN', () => {
    for (const eps of [0, 1, -0.1, 1.5, NaN]) {
      expectCode(() => jlDimensionBound(100, eps), 'E_ARG');
      expectCode(() => jlFailureBound(100, 50, eps), 'E_ARG');
    }
    expectCode(() => jlDimension(1, 0.1), 'E_ARG');
    expectCode(() => jlFailureBound(10, 0, 0.1), 'E_ARG');
    expectCode(() => embeddingDimensionBound(2.5), 'E_ARG');
    expectCode(() => RandomProjection.create(0, 5), 'E_ARG');
    expectCode(() => RandomProjection.create(5, 2.5), 'E_ARG');
    expectCode(() => RandomProjection.create(5, 5, { kind: 'dense' as 'gaussian' }), 'E_ARG');
    expectCode(() => RandomProjection.create(5, 5, { seed: -1 }), 'E_ARG');
    const p = RandomProjection.create(4, 3);
    const x = points(3, 5, 1);
    expectCode(() => p.project(x), 'E_SHAPE');
    expectCode(() => p.project(kx.zeros([3, 4], { dtype: 'int32' })), 'E_DTYPE');
    const y = points(3, 4, 2);
    expectCode(() => measureDistortion(x, points(2, 3, 1), 0.5), 'E_SHAPE');
    expectCode(() => measureDistortion(x, y, 1), 'E_ARG');
    const same = kx.ones([4, 3]);
    expectCode(() => measureDistortion(same, kx.ones([4, 2]), 0.5), 'E_ARG'); // all pairs duplicates
    expectCode(() => measureAngles(kx.zeros([3, 3]), kx.ones([3, 8]), 0.5), 'E_ARG'); // no angles
    const nan = kx.tensor([1, 2, NaN, 4], [2, 2]);
    expectCode(() => measureDistortion(nan, kx.ones([2, 2]), 0.5), 'E_ARG');
    expectCode(() => runJl(x, { eps: 0.5, dimension: 0 }), 'E_ARG');
    expectCode(() => runJl(x, { eps: 0.5, maxPairs: 0 }), 'E_ARG');
    expectCode(() => runJl(points(1, 4, 1), { eps: 0.5 }), 'E_SHAPE');
    expectCode(() => randomizedSvd(y, 0), 'E_ARG');
    expectCode(() => randomizedSvd(y, 4), 'E_ARG');
    expectCode(() => randomizedSvd(y, 2, { powerIterations: -1 }), 'E_ARG');
    expectCode(() => randomizedSvd(kx.zeros([4]), 1), 'E_SHAPE');
    p.dispose();
    kx.dispose([x, y, same, nan]);
  });
});
