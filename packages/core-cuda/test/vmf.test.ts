/**
 * The von Mises–Fisher distribution (ALGORITHMS.md §5, TEST-VECTORS.md): the special functions
 * against references independent of their code paths (fixture tools/golden/fx_vmf.py), the test
 * vectors (E[w] = A_d(κ), the KL to the uniform prior), both samplers of w against A_d(κ) and each
 * other, κ = 0 against the uniform law, the log-density against a closed form, and gradients
 * through the reparameterised z.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, tolerance } from './helpers.js';

const fixture = loadFixture('vmf');

function meanAndSe(a: Float32Array): { mean: number; se: number } {
  let s = 0;
  for (const x of a) s += x;
  const mean = s / a.length;
  let v = 0;
  for (const x of a) v += (x - mean) ** 2;
  return { mean, se: Math.sqrt(v / (a.length - 1) / a.length) };
}

/** The two-sample Kolmogorov–Smirnov statistic sup |F_a − F_b|. */
function ksTwoSample(a: Float32Array, b: Float32Array): number {
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const t = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i]! <= t) i++;
    while (j < y.length && y[j]! <= t) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

/** The one-sample KS statistic against a CDF. */
function ksOneSample(a: Float32Array, cdf: (x: number) => number): number {
  const x = Float64Array.from(a).sort();
  let d = 0;
  x.forEach((v, i) => (d = Math.max(d, Math.abs(cdf(v) - i / x.length), Math.abs(cdf(v) - (i + 1) / x.length))));
  return d;
}

/** KS critical value at α = 0.001 (c(α) = 1.949) for samples of n and m. */
const ksCritical = (n: number, m: number) => 1.949 * Math.sqrt((n + m) / (n * m));

const host = (t: kx.Tensor) => kx.tidy(() => t.toFloat32Array());

describe('Bessel functions', () => {
  it('ln I_v(x) matches torch i0e/i1e, the closed forms of I_1/2 and I_3/2 and a float64 series', () => {
    const cases = fixture.cases.filter((c) => typeof c.log_i === 'number') as Array<{ name: string; v: number; x: number; log_i: number }>;
    expect(cases.length).toBeGreaterThan(60);
    for (const c of cases) {
      const got = kx.logBesselI(c.v, c.x);
      expect(Math.abs(got - c.log_i), `${c.name}: ${got} vs ${c.log_i}`).toBeLessThanOrEqual(2e-12 * Math.max(1, Math.abs(c.log_i)));
      expect(kx.logBesselIve(c.v, c.x)).toBeCloseTo(got - c.x, 9);
    }
  });

  it('the continued fraction gives A_d(κ) = I_{d/2} / I_{d/2-1} of the series', () => {
    const { ratios } = fixture.cases.find((c) => c.name === 'mean lengths') as unknown as { ratios: Array<{ d: number; kappa: number; a: number }> };
    for (const r of ratios) expect(Math.abs(kx.vmf.meanLength(r.d, r.kappa) - r.a), `d=${r.d} κ=${r.kappa}`).toBeLessThan(1e-12);
  });

  it('ln Γ agrees with known values', () => {
    expect(kx.logGamma(1)).toBeCloseTo(0, 13);
    expect(kx.logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 13);
    expect(kx.logGamma(10)).toBeCloseTo(Math.log(362880), 12);
    expect(kx.logGamma(100.5)).toBeCloseTo(361.4355404677776, 10); // Python's math.lgamma(100.5)
  });

  it('refuses orders and arguments outside their domains', () => {
    expectCode(() => kx.logBesselI(-1, 2), 'E_ARG');
    expectCode(() => kx.logBesselI(1, Number.NaN), 'E_ARG');
    expectCode(() => kx.besselRatio(0, 2), 'E_ARG');
    expectCode(() => kx.logGamma(0), 'E_ARG');
    expect(kx.logBesselI(2, 0)).toBe(-Infinity);
    expect(kx.logBesselI(0, 0)).toBe(0);
  });
});

describe('vMF closed forms (§5.3)', () => {
  it('gives the test vectors: A_d(κ) and KL(vMF ‖ uniform) to 1e-4', () => {
    const vectors: Array<[number, number, number, number]> = [
      [4, 20, 0.926, 3.2584],
      [3, 20, 0.95, 2.6889],
      [64, 100, 0.7324, 24.4295],
    ];
    for (const [d, kappa, a, kl] of vectors) {
      expect(Math.abs(kx.vmf.meanLength(d, kappa) - a)).toBeLessThan(1e-4);
      expect(Math.abs(kx.vmf.klToUniform(d, kappa) - kl)).toBeLessThan(1e-4);
    }
  });

  it('stays finite and ordered for κ into the thousands and d into the hundreds', () => {
    for (const d of [2, 3, 128, 512, 1024]) {
      let last = 0;
      for (const kappa of [0, 1e-3, 1, 50, 500, 2000, 5000, 20000]) {
        const kl = kx.vmf.klToUniform(d, kappa);
        expect(Number.isFinite(kl), `d=${d} κ=${kappa}`).toBe(true);
        expect(kl).toBeGreaterThanOrEqual(last - 1e-9); // the KL grows with κ
        last = kl;
        const a = kx.vmf.meanLength(d, kappa);
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThan(1);
      }
    }
    // for large κ the vMF is nearly Gaussian in d-1 dimensions: A_d(κ) ≈ 1 − (d − 1) / (2κ)
    expect(kx.vmf.meanLength(64, 20000)).toBeCloseTo(1 - 63 / 40000, 5);
    // the normaliser is continuous at κ = 0
    expect(kx.vmf.logNormalizer(5, 1e-9)).toBeCloseTo(kx.vmf.logNormalizer(5, 0), 8);
  });

  it('log-density: the closed form on S² and a density that integrates to one', () => {
    const kappa = 7;
    const mu = kx.tensor([0, 0.6, 0.8], [1, 3]);
    const x = kx.tensor([0, 0.6, 0.8, 1, 0, 0, 0, -0.6, -0.8], [3, 3]);
    const got = host(kx.vmf.logDensity(x, mu, kappa));
    const c3 = Math.log(kappa / (4 * Math.PI * Math.sinh(kappa)));
    [1, 0, -1].forEach((cos, i) => expect(got[i]).toBeCloseTo(c3 + kappa * cos, 4));
    // Monte Carlo over uniform points of S^4: mean density × surface area ≈ 1
    const d = 5;
    const n = 200_000;
    const pts = kx.tidy(() => {
      const e = kx.randomNormal([n, d], { seed: 11 });
      return kx.keep(kx.div(e, kx.sqrt(kx.sum(kx.mul(e, e), -1, true))));
    });
    const m = kx.tensor([1, 0, 0, 0, 0], [1, d]);
    const dens = host(kx.exp(kx.vmf.logDensity(pts, m, 3)));
    const area = Math.exp(-kx.vmf.logNormalizer(d, 0));
    const { mean, se } = meanAndSe(dens);
    expect(Math.abs(mean * area - 1)).toBeLessThan(4 * se * area);
    pts.dispose();
  });

  it('refuses bad d, κ and shapes', () => {
    expectCode(() => kx.vmf.klToUniform(1, 2), 'E_ARG');
    expectCode(() => kx.vmf.meanLength(3.5, 2), 'E_ARG');
    expectCode(() => kx.vmf.meanLength(3, -1), 'E_ARG');
    expectCode(() => kx.vmf.logDensity(kx.zeros([2, 3]), kx.zeros([2, 4]), 1), 'E_SHAPE');
  });
});

describe('vMF samplers of w (§5.2)', () => {
  const settings: Array<[number, number]> = [
    [4, 20],
    [3, 20],
    [64, 100],
  ];

  it('sampled E[w] is A_d(κ) within 3 standard errors, for the inverse CDF, its pool and Wood', () => {
    const n = 200_000;
    for (const [d, kappa] of settings) {
      const a = kx.vmf.meanLength(d, kappa);
      const icdf = kx.vmf.InverseCdf.build(d, kappa);
      const pool = new kx.vmf.WPool(icdf, 1_000_000, { seed: 5 });
      for (const [name, w] of [
        ['icdf', host(icdf.sample(n, { seed: 1 }))],
        ['pool', host(pool.sample(n, { seed: 2 }))],
        ['wood', host(kx.vmf.sampleWood(n, d, kappa, { seed: 3 }))],
      ] as const) {
        const { mean, se } = meanAndSe(w);
        expect(Math.abs(mean - a), `${name} d=${d} κ=${kappa}: ${mean} vs ${a} (se ${se})`).toBeLessThan(3 * se);
        expect(w.every((x) => x >= -1 && x <= 1)).toBe(true);
      }
      icdf.dispose();
    }
  });

  it('the inverse CDF and Wood agree (two-sample KS at α = 0.001), also on the post\'s grid δ = 1e-7', () => {
    const n = 50_000;
    for (const [d, kappa] of [...settings, [16, 1000] as [number, number], [2, 3] as [number, number]]) {
      const icdf = kx.vmf.InverseCdf.build(d, kappa, { delta: d === 4 ? 1e-7 : 1e-6 });
      const a = host(icdf.sample(n, { seed: 21 }));
      const b = host(kx.vmf.sampleWood(n, d, kappa, { seed: 22 }));
      expect(ksTwoSample(a, b), `d=${d} κ=${kappa}`).toBeLessThan(ksCritical(n, n));
      icdf.dispose();
    }
  });

  it('κ = 0 is uniform on the sphere: w uniform on [-1, 1] for d = 3, and z with uniform moments', () => {
    const n = 50_000;
    const uniformW = (x: number) => (x + 1) / 2;
    const icdf = kx.vmf.InverseCdf.build(3, 0);
    expect(ksOneSample(host(icdf.sample(n, { seed: 1 })), uniformW)).toBeLessThan(ksCritical(n, 1e12));
    expect(ksOneSample(host(kx.vmf.sampleWood(n, 3, 0, { seed: 2 })), uniformW)).toBeLessThan(ksCritical(n, 1e12));
    // d = 6: every coordinate has mean 0 and variance 1/d, and the points are unit vectors
    const d = 6;
    const mu = kx.tensor(Float32Array.from({ length: n * d }, (_, i) => (i % d === 2 ? 1 : 0)), [n, d]);
    const z = host(kx.vmf.sample(mu, 0, { method: 'wood' }, { seed: 9 }));
    for (let j = 0; j < d; j++) {
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        s += z[i * d + j]!;
        s2 += z[i * d + j]! ** 2;
      }
      expect(Math.abs(s / n)).toBeLessThan(4 * Math.sqrt(1 / d / n));
      expect(Math.abs(s2 / n - 1 / d)).toBeLessThan(0.01);
    }
    for (let i = 0; i < n; i += 997) {
      let r = 0;
      for (let j = 0; j < d; j++) r += z[i * d + j]! ** 2;
      expect(r).toBeCloseTo(1, 5);
    }
    icdf.dispose();
  });

  it('z = wμ + sqrt(1-w²)ν has ⟨μ, z⟩ = w and unit length, and the same key draws the same z', () => {
    const mu = kx.tidy(() => {
      const m = kx.randomNormal([257, 5], { seed: 4 });
      return kx.keep(kx.div(m, kx.sqrt(kx.sum(kx.mul(m, m), -1, true))));
    });
    const icdf = kx.vmf.InverseCdf.build(5, 30);
    const rng = new kx.Philox(17);
    const z1 = host(kx.vmf.sample(mu, 30, { method: 'icdf', icdf }, rng));
    expect(rng.offset).toBe(257 * 6);
    const z2 = host(kx.vmf.sample(mu, 30, { method: 'icdf', icdf }, new kx.Philox(17)));
    const z3 = host(kx.vmf.sample(mu, 30, { method: 'icdf', icdf }, rng));
    expect(z2).toEqual(z1);
    expect(z3).not.toEqual(z1);
    const w = host(icdf.sample(257, { seed: 17 }));
    const m = host(mu);
    for (let b = 0; b < 257; b++) {
      let dot = 0;
      let r = 0;
      for (let j = 0; j < 5; j++) {
        dot += m[b * 5 + j]! * z1[b * 5 + j]!;
        r += z1[b * 5 + j]! ** 2;
      }
      expect(dot).toBeCloseTo(w[b]!, 5);
      expect(r).toBeCloseTo(1, 5);
    }
    mu.dispose();
    icdf.dispose();
  });

  it('draws depend only on (seed, offset + i)', () => {
    const icdf = kx.vmf.InverseCdf.build(4, 20);
    const all = host(icdf.sample(100, { seed: 8 }));
    expect(host(icdf.sample(60, { seed: 8, offset: 40 }))).toEqual(all.slice(40));
    const wood = host(kx.vmf.sampleWood(100, 4, 20, { seed: 8 }));
    expect(host(kx.vmf.sampleWood(30, 4, 20, { seed: 8, offset: 70 }))).toEqual(wood.slice(70));
    const normal = host(kx.randomNormal([100], { seed: 8 }));
    expect(host(kx.randomNormal([3, 10], { seed: 8, offset: 70 }))).toEqual(normal.slice(70));
    icdf.dispose();
  });

  it('the table is the post\'s: a CDF on the grid -1 + (k+1)δ < 1 ending at 1', () => {
    const t = host(kx.vmf.cdfTable(3, 2, 0.3)); // grid -0.7, -0.4, …, 0.8; density ∝ e^{2w} for d = 3
    const xs = [-0.7, -0.4, -0.1, 0.2, 0.5, 0.8];
    const e = xs.map((x) => Math.exp(2 * x));
    const total = e.reduce((a, b) => a + b, 0);
    let c = 0;
    xs.forEach((_, k) => expect(t[k]).toBeCloseTo((c += e[k]!) / total, 6));
    expect(t.length).toBe(6);
    expect(kx.vmf.cdfTable(4, 5, 1e-7).shape).toEqual([19_999_999]);
  });

  it('normal draws have mean 0 and variance 1', () => {
    const x = host(kx.randomNormal([400_000], new kx.Philox(3)));
    const { mean, se } = meanAndSe(x);
    expect(Math.abs(mean)).toBeLessThan(4 * se);
    const v = x.reduce((s, a) => s + a * a, 0) / x.length;
    expect(Math.abs(v - 1)).toBeLessThan(0.01);
    expect(ksOneSample(x.slice(0, 50_000), (t) => 0.5 * (1 + erf(t / Math.SQRT2)))).toBeLessThan(ksCritical(50_000, 1e12));
  });

  it('under kx.compile, draws from a generator are taken afresh at every replay, as eagerly', () => {
    const mu = kx.tidy(() => {
      const m = kx.randomNormal([33, 4], { seed: 1 });
      return kx.keep(kx.div(m, kx.sqrt(kx.sum(kx.mul(m, m), -1, true))));
    });
    const icdf = kx.vmf.InverseCdf.build(4, 20);
    for (const sampler of [{ method: 'wood' }, { method: 'icdf', icdf }] as kx.vmf.WSampler[]) {
      const eagerRng = new kx.Philox(5);
      const compiledRng = new kx.Philox(5);
      const compiled = kx.compile((m: kx.Tensor) => kx.vmf.sample(m, 20, sampler, compiledRng));
      const seen: Float32Array[] = [];
      for (let i = 0; i < 3; i++) {
        const c = host(compiled(mu));
        // the same draws; the compiled program's fused arithmetic may round the composition differently
        const e = host(kx.vmf.sample(mu, 20, sampler, eagerRng));
        expect(Math.max(...c.map((v, k) => Math.abs(v - e[k]!)))).toBeLessThan(1e-5);
        expect(compiledRng.offset).toBe(eagerRng.offset);
        seen.push(c);
      }
      expect(compiled.stats.replays).toBe(2);
      expect(Math.max(...seen[1]!.map((v, k) => Math.abs(v - seen[2]![k]!)))).toBeGreaterThan(0.1);
    }
    // the pool gathers on the host: a replay would repeat the traced draws, so a trace refuses it
    const pool = new kx.vmf.WPool(icdf, 1000, { seed: 3 });
    const pooled = kx.compile((m: kx.Tensor) => kx.vmf.sample(m, 20, { method: 'pool', pool }, new kx.Philox(1)));
    expectCode(() => pooled(mu), 'E_ARG');
    icdf.dispose();
    mu.dispose();
  });

  it('refuses bad grids, tables, counts and keys', () => {
    expectCode(() => kx.vmf.cdfTable(3, 1, 0), 'E_ARG');
    expectCode(() => kx.vmf.cdfTable(3, 1, 0.9), 'E_ARG');
    expectCode(() => kx.vmf.InverseCdf.build(1, 1), 'E_ARG');
    expectCode(() => kx.vmf.sampleWood(5, 3, -2, { seed: 1 }), 'E_ARG');
    expectCode(() => kx.vmf.sampleWood(-1, 3, 2, { seed: 1 }), 'E_ARG');
    expectCode(() => kx.vmf.sampleWood(5, 3, 2, { seed: -1 }), 'E_ARG');
    expectCode(() => kx.runKernel('vmf_sample_icdf', [kx.ones([7])], { count: 3, delta: 0.5, seed: 1, offset: 0 }), 'E_SHAPE');
    expectCode(() => kx.runKernel('vmf_sample_icdf', [kx.ones([3], { dtype: 'float16' })], { count: 3, delta: 0.5, seed: 1, offset: 0 }), 'E_DTYPE');
    expectCode(() => kx.randomNormal([2], { seed: 2 ** 53 }), 'E_ARG');
    const icdf = kx.vmf.InverseCdf.build(4, 20);
    expectCode(() => kx.vmf.sample(kx.ones([2, 3]), 20, { method: 'icdf', icdf }, { seed: 1 }), 'E_ARG');
    expectCode(() => kx.vmf.compose(kx.ones([2, 3]), kx.ones([3]), kx.ones([2, 3])), 'E_SHAPE');
    icdf.dispose();
  });
});

describe('vmf.compose: z = wμ + sqrt(1 − w²)ν in one native op each way', () => {
  it('matches PyTorch (float64 autograd) forward and backward, rows of 5 and of 130', () => {
    for (const name of ['compose_small', 'compose_wide']) {
      const [mu, w, eps, up] = ['mu', 'w', 'eps', 'up'].map((r) => fixture.get(`${name}.${r}`)) as [kx.Tensor, kx.Tensor, kx.Tensor, kx.Tensor];
      kx.tidy(() => {
        expectClose(kx.vmf.compose(mu, w, eps), fixture.get(`${name}.z`), tolerance('float32'), `${name} z`);
        const { grads } = kx.valueAndGrad(([m, ww, e]) => kx.sum(kx.mul(kx.vmf.compose(m!, ww!, e!), up)), [mu, w, eps]);
        expectClose(grads[0]!, fixture.get(`${name}.dmu`), tolerance('float32', 'reduction'), `${name} dmu`);
        expectClose(grads[1]!, fixture.get(`${name}.dw`), tolerance('float32', 'reduction'), `${name} dw`);
        expectClose(grads[2]!, fixture.get(`${name}.deps`), tolerance('float32', 'reduction'), `${name} deps`);
      });
    }
  });

  it('half dtypes compute in float32 and round once; a tangent of zero gives z = wμ', () => {
    const mu = fixture.get('compose_small.mu');
    const w = fixture.get('compose_small.w');
    const eps = fixture.get('compose_small.eps');
    for (const dtype of ['float16', 'bfloat16'] as const) {
      kx.tidy(() => {
        const z = kx.vmf.compose(mu.cast(dtype), w.cast(dtype), eps.cast(dtype));
        expect(z.dtype).toBe(dtype);
        expectClose(z.cast('float32'), fixture.get('compose_small.z'), 4 * tolerance(dtype), dtype);
      });
    }
    kx.tidy(() => {
      // ε along μ exactly: no direction orthogonal to μ to take, ν = 0
      const m = kx.tensor([1, 0, 0, 1], [2, 2]);
      const z = kx.vmf.compose(m, kx.tensor([0.5, -0.25], [2]), kx.mul(m, 3)).toFloat32Array();
      expect(Array.from(z)).toEqual([0.5, 0, 0, -0.25]);
      const { grads } = kx.valueAndGrad(([mm]) => kx.sum(kx.vmf.compose(mm!, kx.tensor([0.5, -0.25], [2]), kx.mul(m, 3))), [m]);
      expect(grads[0]!.toFloat32Array().every(Number.isFinite)).toBe(true);
    });
  });

  it('refuses shapes and dtypes that do not fit', () => {
    expectCode(() => kx.runKernel('vmf_compose', [kx.ones([2, 3]), kx.ones([2]), kx.ones([2, 4])], {}), 'E_SHAPE');
    expectCode(() => kx.runKernel('vmf_compose', [kx.ones([2, 3]), kx.ones([3]), kx.ones([2, 3])], {}), 'E_SHAPE');
    expectCode(() => kx.runKernel('vmf_compose', [kx.ones([6]), kx.ones([6]), kx.ones([6])], {}), 'E_SHAPE');
    expectCode(() => kx.runKernel('vmf_compose', [kx.ones([2, 3]), kx.ones([2], { dtype: 'float16' }), kx.ones([2, 3])], {}), 'E_DTYPE');
    expectCode(() => kx.runKernel('vmf_compose_backward', [kx.ones([2, 3]), kx.ones([2]), kx.ones([2, 3]), kx.ones([3, 3])], {}), 'E_SHAPE');
  });
});

describe('gradients through the reparameterised z (§5.2, w held fixed)', () => {
  it('match finite differences in μ (through wμ and ν), for unnormalised and normalised μ', () => {
    const B = 6;
    const d = 4;
    const w = kx.vmf.sampleWood(B, d, 20, { seed: 1 });
    const eps = kx.randomNormal([B, d], { seed: 2 });
    const weights = kx.randomNormal([B, d], { seed: 3 });
    const raw = kx.tidy(() => kx.keep(kx.add(kx.randomNormal([B, d], { seed: 4 }), 0.5)));
    const unit = (m: kx.Tensor) => kx.div(m, kx.sqrt(kx.sum(kx.mul(m, m), -1, true)));
    // the encoder's μ = l2_normalise(h), then z: the loss is Σ weights · z
    expectGradOk((h) => kx.sum(kx.mul(kx.vmf.compose(unit(h), w, eps), weights)), [raw], { eps: 1e-3, atol: 2e-3 });
    // z through ν alone (w = 0) and the noise's own gradient
    const w0 = kx.zeros([B]);
    expectGradOk((m, e) => kx.sum(kx.mul(kx.vmf.compose(unit(m), w0, e), weights)), [raw, eps], { eps: 1e-3, atol: 2e-3 });
  });
});

/** erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), for the normal CDF of the KS check. */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}
