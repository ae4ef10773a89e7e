import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('norm');
afterAll(() => kx.dispose(fx.tensors));

type NormCase = { name: string; op: 'layer_norm' | 'rms_norm'; shape: number[]; eps: number; gamma: boolean; beta: boolean; dtype: kx.DType };
const cases = fx.cases as unknown as NormCase[];

function opt(name: string): kx.Tensor | null {
  return fx.tensors[name] ?? null;
}

/** The forward of a fixture case with the given parameters. */
function forward(c: NormCase, x: kx.Tensor, g: kx.Tensor | null, b: kx.Tensor | null): kx.Tensor {
  return c.op === 'layer_norm' ? kx.layerNorm(x, g, b, c.eps) : kx.rmsNorm(x, g, c.eps);
}

/** Forward: the elementwise bar (float32 1e-5) holds even for rows of 1000+ (two-pass stats). */
function fwdTol(c: NormCase): number {
  return tolerance(c.dtype, 'elementwise');
}

describe('layerNorm / rmsNorm forward vs PyTorch', () => {
  for (const c of cases) {
    it(`${c.name}: ${c.op} ${c.dtype} [${c.shape.join(', ')}]`, () => {
      const y = forward(c, fx.get(`${c.name}.x`), opt(`${c.name}.gamma`), opt(`${c.name}.beta`));
      expect(y.dtype).toBe(c.dtype);
      expectClose(y, fx.get(`${c.name}.y`), fwdTol(c), c.name);
      y.dispose();
    });
  }
});

/**
 * D = 1 is ill-conditioned in float32, so dx is judged against the rounding of its terms rather
 * than by a relative error: LayerNorm's dx is exactly 0 in real arithmetic (y = beta), and float32
 * leaves only the rounding of dy·γ·rstd (rstd = 1/√eps here); RMSNorm's dx = γ·dy·eps/(x²+eps)^1.5
 * is computed as rstd·g − x²·rstd³·g, a cancellation that loses x²/eps ulps.
 */
function expectD1Grad(c: NormCase, x: kx.Tensor, w: kx.Tensor, gamma: kx.Tensor | null, dx: kx.Tensor): void {
  const xs = x.toFloat32Array();
  const ws = w.toFloat32Array();
  const gs = gamma ? gamma.toFloat32Array() : null;
  const want = fx.get(`${c.name}.dx`).toFloat32Array();
  dx.toFloat32Array().forEach((got, i) => {
    const g = ws[i]! * (gs ? gs[0]! : 1);
    if (c.op === 'layer_norm') {
      expect(Math.abs(got)).toBeLessThanOrEqual(4 * 2 ** -23 * Math.abs(g) / Math.sqrt(c.eps));
    } else {
      const ulps = 8 * (1 + (xs[i]! * xs[i]!) / c.eps);
      expect(Math.abs(got - want[i]!)).toBeLessThanOrEqual(ulps * 2 ** -23 * Math.abs(want[i]!));
    }
  });
}

describe('layerNorm / rmsNorm gradients vs PyTorch (loss = sum(y * w))', () => {
  for (const c of cases) {
    it(`${c.name}: dx${c.gamma ? ', dgamma' : ''}${c.beta ? ', dbeta' : ''}`, () => {
      const x = fx.get(`${c.name}.x`);
      const w = fx.get(`${c.name}.w`);
      const params: Record<string, kx.Tensor> = { x };
      const gamma = opt(`${c.name}.gamma`);
      const beta = opt(`${c.name}.beta`);
      if (gamma) params.gamma = gamma;
      if (beta) params.beta = beta;
      const grads = kx.grad((p) => kx.sum(kx.mul(forward(c, p.x!, p.gamma ?? null, p.beta ?? null), w)), params);
      // Gradients reduce over rows and columns, yet float32 meets the elementwise bar (1e-5) here;
      // halves are judged by their epsilon.
      const tol = tolerance(c.dtype, 'elementwise');
      if (c.shape[c.shape.length - 1] === 1) expectD1Grad(c, x, w, gamma, grads.x!);
      else expectClose(grads.x!, fx.get(`${c.name}.dx`), tol, `${c.name} dx`);
      const d1LayerNorm = c.op === 'layer_norm' && c.shape[c.shape.length - 1] === 1;
      if (gamma && d1LayerNorm) {
        // dγ = Σ dy·x̂ with x̂ = 0 exactly (the reference holds float64 noise around 0).
        for (const v of grads.gamma!.toFloat32Array()) expect(Math.abs(v)).toBeLessThanOrEqual(1e-6);
      } else if (gamma) expectClose(grads.gamma!, fx.get(`${c.name}.dgamma`), tol, `${c.name} dgamma`);
      if (beta) expectClose(grads.beta!, fx.get(`${c.name}.dbeta`), tol, `${c.name} dbeta`);
      for (const g of Object.values(grads)) expect(g.dtype).toBe(c.dtype);
      kx.dispose(grads);
    });
  }
});

describe('layerNorm / rmsNorm gradients by finite differences', () => {
  const fd = { eps: 3e-3, atol: 2e-3, rtol: 1e-2, maxPoints: 40 };
  for (const d of [1, 3, 17, 1030]) {
    it(`layerNorm D = ${d}: x, gamma, beta`, () => {
      const rows = d > 100 ? 2 : 5;
      const x = randomTensor([rows, d], 10 + d, 2);
      const g = randomTensor([d], 20 + d);
      const b = randomTensor([d], 30 + d);
      const w = randomTensor([rows, d], 40 + d);
      expectGradOk((xx, gg, bb) => kx.sum(kx.mul(kx.layerNorm(xx!, gg, bb), w)), [x, g, b], fd);
      kx.dispose([x, g, b, w]);
    });
    it(`rmsNorm D = ${d}: x, gamma`, () => {
      const rows = d > 100 ? 2 : 5;
      const x = randomTensor([rows, d], 50 + d, 2);
      const g = randomTensor([d], 60 + d);
      const w = randomTensor([rows, d], 70 + d);
      expectGradOk((xx, gg) => kx.sum(kx.mul(kx.rmsNorm(xx!, gg), w)), [x, g], fd);
      kx.dispose([x, g, w]);
    });
  }

  it('without parameters (x only), 3-D input', () => {
    const x = randomTensor([2, 3, 8], 5, 3);
    const w = randomTensor([2, 3, 8], 6);
    expectGradOk((xx) => kx.sum(kx.mul(kx.layerNorm(xx!), w)), [x], { eps: 3e-3, atol: 2e-3, rtol: 1e-2 });
    expectGradOk((xx) => kx.sum(kx.mul(kx.rmsNorm(xx!), w)), [x], { eps: 3e-3, atol: 2e-3, rtol: 1e-2 });
    kx.dispose([x, w]);
  });
});

describe('layerNorm / rmsNorm statistics and determinism', () => {
  it('returns float32 mean and rstd per row natively, also for half x', () => {
    const x32 = randomTensor([3, 50], 3, 4);
    const xs = x32.toFloat32Array();
    const x16 = kx.tensor(xs, [3, 50], { dtype: 'bfloat16' });
    const [y, mean, rstd] = kx.runKernel('layer_norm', [x16, null, null], { eps: 1e-5 });
    expect(mean!.dtype).toBe('float32');
    expect(mean!.shape).toEqual([3]);
    const xr = x16.toFloat32Array();
    for (let r = 0; r < 3; r++) {
      const row = Array.from(xr.subarray(r * 50, r * 50 + 50));
      const m = row.reduce((a, v) => a + v, 0) / 50;
      const v = row.reduce((a, t) => a + (t - m) ** 2, 0) / 50;
      expect(Math.abs(mean!.toFloat32Array()[r]! - m)).toBeLessThan(1e-5);
      expect(Math.abs(rstd!.toFloat32Array()[r]! - 1 / Math.sqrt(v + 1e-5)) / (1 / Math.sqrt(v))).toBeLessThan(1e-5);
    }
    kx.dispose([x32, x16, y, mean, rstd]);
  });

  it('reduces dgamma/dbeta to the same bits whatever the thread count', () => {
    const threads = kx.buildInfo().threads;
    const x = randomTensor([300, 40], 8, 2);
    const g = randomTensor([40], 9);
    const b = randomTensor([40], 10);
    const w = randomTensor([300, 40], 11);
    const run = () => {
      const gr = kx.grad(([xx, gg, bb]) => kx.sum(kx.mul(kx.layerNorm(xx!, gg, bb), w)), [x, g, b]);
      const rm = kx.grad(([xx, gg]) => kx.sum(kx.mul(kx.rmsNorm(xx!, gg), w)), [x, g]);
      const out = [...gr, ...rm].map((t) => Array.from(t.toFloat32Array()));
      kx.dispose([gr, rm]);
      return out;
    };
    try {
      kx.setNumThreads(1);
      const one = run();
      kx.setNumThreads(5);
      const five = run();
      expect(five).toEqual(one);
      expect(run()).toEqual(one);
    } finally {
      kx.setNumThreads(threads);
    }
    kx.dispose([x, g, b, w]);
  });

  it('leaves no tensors behind: the statistics are freed, or kept only while the tape needs them', () => {
    const x = randomTensor([4, 10], 1);
    const g = randomTensor([10], 2);
    const before = kx.memory().tensors;
    kx.layerNorm(x, g).dispose();
    kx.rmsNorm(x, g).dispose();
    expect(kx.memory().tensors).toBe(before);
    const grads = kx.grad(([xx, gg]) => kx.sum(kx.add(kx.layerNorm(xx!, gg), kx.rmsNorm(xx!, gg))), [x, g]);
    expect(kx.memory().tensors).toBe(before + 2);
    kx.dispose([x, g, grads]);
  });

  it('a constant row normalises to beta (zero variance, eps keeps it finite)', () => {
    const x = kx.full([2, 6], 3.5);
    const beta = kx.tensor([1, 2, 3, 4, 5, 6]);
    const y = kx.layerNorm(x, null, beta);
    expect(Array.from(y.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]);
    const z = kx.rmsNorm(kx.zeros([1, 4]));
    expect(Array.from(z.toFloat32Array())).toEqual([0, 0, 0, 0]);
    kx.dispose([x, beta, y, z]);
  });
});

describe('layerNorm / rmsNorm errors', () => {
  const x = randomTensor([4, 6], 1);
  afterAll(() => x.dispose());

  it('rejects gamma/beta of the wrong shape (E_SHAPE), also natively', () => {
    const g5 = kx.ones([5]);
    const g2d = kx.ones([1, 6]);
    expectCode(() => kx.layerNorm(x, g5), 'E_SHAPE');
    expectCode(() => kx.layerNorm(x, null, g5), 'E_SHAPE');
    expectCode(() => kx.layerNorm(x, g2d), 'E_SHAPE');
    expectCode(() => kx.rmsNorm(x, g5), 'E_SHAPE');
    expectCode(() => kx.runKernel('layer_norm', [x, g5, null], { eps: 1e-5 }), 'E_SHAPE');
    expectCode(() => kx.runKernel('rms_norm', [x, g2d], { eps: 1e-6 }), 'E_SHAPE');
    kx.dispose([g5, g2d]);
  });

  it('rejects mismatched dtypes and integer x (E_DTYPE), also natively', () => {
    const gh = kx.ones([6], { dtype: 'float16' });
    const xi = kx.tensor(new Int32Array(6), [1, 6]);
    expectCode(() => kx.layerNorm(x, gh), 'E_DTYPE');
    expectCode(() => kx.rmsNorm(x, gh), 'E_DTYPE');
    expectCode(() => kx.layerNorm(xi), 'E_DTYPE');
    expectCode(() => kx.runKernel('layer_norm', [x, gh, null], { eps: 1e-5 }), 'E_DTYPE');
    expectCode(() => kx.runKernel('rms_norm', [x, gh], {}), 'E_DTYPE');
    kx.dispose([gh, xi]);
  });

  it('rejects a bad eps, a scalar x and non-tensor parameters', () => {
    expectCode(() => kx.layerNorm(x, null, null, -1), 'E_ARG');
    expectCode(() => kx.rmsNorm(x, null, NaN), 'E_ARG');
    expectCode(() => kx.runKernel('rms_norm', [x, null], { eps: -1 }), 'E_ARG');
    expectCode(() => kx.layerNorm(x, [1, 2] as unknown as kx.Tensor), 'E_ARG');
    const s = kx.scalar(2);
    expectCode(() => kx.layerNorm(s), 'E_SHAPE');
    s.dispose();
  });

  it('checks the backward ops natively', () => {
    const [, mean, rstd] = kx.runKernel('layer_norm', [x, null, null], { eps: 1e-5 });
    const dyBad = kx.ones([4, 5]);
    const short = kx.ones([3]);
    expectCode(() => kx.runKernel('layer_norm_backward', [dyBad, x, null, mean, rstd]), 'E_SHAPE');
    expectCode(() => kx.runKernel('layer_norm_backward', [x, x, null, short, rstd]), 'E_SHAPE');
    expectCode(() => kx.runKernel('rms_norm_backward', [x, x, null, short]), 'E_SHAPE');
    kx.dispose([mean, rstd, dyBad, short]);
  });
});
