import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, maxRelError, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('fused');
afterAll(() => kx.dispose(fx.tensors));

type BiasGeluCase = { name: string; op: 'bias_gelu'; shape: number[]; approximate: 'none' | 'tanh'; dtype: kx.DType };
type AddNormCase = { name: string; op: 'add_layer_norm' | 'add_rms_norm'; shape: number[]; eps: number; gamma: boolean; beta: boolean; dtype: kx.DType };
const geluCases = fx.cases.filter((c) => c.op === 'bias_gelu') as unknown as BiasGeluCase[];
const normCases = fx.cases.filter((c) => c.op !== 'bias_gelu') as unknown as AddNormCase[];

function opt(name: string): kx.Tensor | null {
  return fx.tensors[name] ?? null;
}

function addNorm(c: AddNormCase, x: kx.Tensor, r: kx.Tensor, g: kx.Tensor | null, b: kx.Tensor | null): kx.AddNormResult {
  return c.op === 'add_layer_norm' ? kx.addLayerNorm(x, r, g, b, c.eps) : kx.addRmsNorm(x, r, g, c.eps);
}

/** Same shape and dtype, and the same bits. */
function expectSameBits(a: kx.Tensor, b: kx.Tensor, label: string): void {
  expect(a.shape, label).toEqual(b.shape);
  expect(a.dtype, label).toBe(b.dtype);
  expect(Array.from(a.dataSync() as ArrayLike<number>), label).toEqual(Array.from(b.dataSync() as ArrayLike<number>));
}

describe('biasGelu vs PyTorch', () => {
  for (const c of geluCases) {
    it(`${c.name}: ${c.approximate} ${c.dtype} [${c.shape.join(', ')}]: y, dx, dbias`, () => {
      const x = fx.get(`${c.name}.x`);
      const bias = fx.get(`${c.name}.bias`);
      const w = fx.get(`${c.name}.w`);
      const tol = tolerance(c.dtype, 'elementwise');
      const y = kx.biasGelu(x, bias, { approximate: c.approximate });
      expect(y.dtype).toBe(c.dtype);
      expectClose(y, fx.get(`${c.name}.y`), tol, `${c.name} y`);
      const grads = kx.grad((p) => kx.sum(kx.mul(kx.biasGelu(p.x!, p.bias!, { approximate: c.approximate }), w)), { x, bias });
      expectClose(grads.x!, fx.get(`${c.name}.dx`), tol, `${c.name} dx`);
      // dbias sums over every row: the reduction bar in float32.
      expectClose(grads.bias!, fx.get(`${c.name}.dbias`), tolerance(c.dtype, 'reduction'), `${c.name} dbias`);
      expect(grads.bias!.dtype).toBe(c.dtype);
      kx.dispose([y, grads]);
    });
  }
});

describe('addLayerNorm / addRmsNorm vs PyTorch (loss = sum(y * w) + sum(sum * w2))', () => {
  for (const c of normCases) {
    it(`${c.name}: ${c.op} ${c.dtype} [${c.shape.join(', ')}]`, () => {
      const x = fx.get(`${c.name}.x`);
      const residual = fx.get(`${c.name}.residual`);
      const gamma = opt(`${c.name}.gamma`);
      const beta = opt(`${c.name}.beta`);
      const w = fx.get(`${c.name}.w`);
      const w2 = fx.get(`${c.name}.w2`);
      const tol = tolerance(c.dtype, 'elementwise');
      const { y, sum } = addNorm(c, x, residual, gamma, beta);
      // The sum is the float32 sum rounded once to the dtype: exactly PyTorch's.
      expectSameBits(sum, fx.get(`${c.name}.s`), `${c.name} sum`);
      expectClose(y, fx.get(`${c.name}.y`), tol, `${c.name} y`);

      const params: Record<string, kx.Tensor> = { x, residual };
      if (gamma) params.gamma = gamma;
      if (beta) params.beta = beta;
      const grads = kx.grad((p) => {
        const out = addNorm(c, p.x!, p.residual!, p.gamma ?? null, p.beta ?? null);
        return kx.add(kx.sum(kx.mul(out.y, w)), kx.sum(kx.mul(out.sum, w2)));
      }, params);
      expectClose(grads.x!, fx.get(`${c.name}.dx`), tol, `${c.name} dx`);
      expectClose(grads.residual!, fx.get(`${c.name}.dresidual`), tol, `${c.name} dresidual`);
      if (gamma) expectClose(grads.gamma!, fx.get(`${c.name}.dgamma`), tol, `${c.name} dgamma`);
      if (beta) expectClose(grads.beta!, fx.get(`${c.name}.dbeta`), tol, `${c.name} dbeta`);
      for (const g of Object.values(grads)) expect(g.dtype).toBe(c.dtype);
      kx.dispose([y, sum, grads]);
    });
  }
});

describe('fused ops equal their unfused compositions', () => {
  const dtypes: kx.DType[] = ['float32', 'float16', 'bfloat16'];
  for (const dtype of dtypes) {
    it(`biasGelu = gelu(add(x, b)), forward and backward (${dtype})`, () => {
      const x = randomTensor([37, 130], 1, 3).cast(dtype);
      const b = randomTensor([130], 2).cast(dtype);
      const w = randomTensor([37, 130], 3).cast(dtype);
      for (const approximate of ['none', 'tanh'] as const) {
        const fused = kx.grad(([xx, bb]) => kx.sum(kx.mul(kx.biasGelu(xx!, bb!, { approximate }), w)), [x, b]);
        const plain = kx.grad(([xx, bb]) => kx.sum(kx.mul(kx.gelu(kx.add(xx!, bb!), { approximate }), w)), [x, b]);
        const y1 = kx.biasGelu(x, b, { approximate });
        const y2 = kx.gelu(kx.add(x, b), { approximate });
        if (dtype === 'float32') {
          // The same float32 arithmetic: the bits agree (dbias is summed in another order).
          expectSameBits(y1, y2, `y ${approximate}`);
          expectSameBits(fused[0]!, plain[0]!, `dx ${approximate}`);
          expectClose(fused[1]!, plain[1]!, 1e-6, `dbias ${approximate}`);
        } else {
          // Halves: the fused op skips the rounding of x + b to the dtype.
          expectClose(y1, y2, tolerance(dtype), `y ${approximate}`);
          expectClose(fused[0]!, plain[0]!, tolerance(dtype), `dx ${approximate}`);
          expectClose(fused[1]!, plain[1]!, tolerance(dtype, 'reduction'), `dbias ${approximate}`);
        }
        kx.dispose([fused, plain, y1, y2]);
      }
      kx.dispose([x, b, w]);
    });

    it(`addLayerNorm / addRmsNorm = norm(add(x, r)), forward and backward (${dtype})`, () => {
      const x = randomTensor([3, 11, 96], 4, 2).cast(dtype);
      const r = randomTensor([3, 11, 96], 5, 2).cast(dtype);
      const g = randomTensor([96], 6).cast(dtype);
      const b = randomTensor([96], 7).cast(dtype);
      const w = randomTensor([3, 11, 96], 8).cast(dtype);
      const w2 = randomTensor([3, 11, 96], 9).cast(dtype);
      const loss = (y: kx.Tensor, s: kx.Tensor) => kx.add(kx.sum(kx.mul(y, w)), kx.sum(kx.mul(s, w2)));
      const pairs: Array<[string, (p: kx.Tensor[]) => [kx.Tensor, kx.Tensor], (p: kx.Tensor[]) => [kx.Tensor, kx.Tensor]]> = [
        [
          'layer',
          ([xx, rr, gg, bb]) => {
            const o = kx.addLayerNorm(xx!, rr!, gg, bb);
            return [o.y, o.sum];
          },
          ([xx, rr, gg, bb]) => {
            const s = kx.add(xx!, rr!);
            return [kx.layerNorm(s, gg, bb), s];
          },
        ],
        [
          'rms',
          ([xx, rr, gg]) => {
            const o = kx.addRmsNorm(xx!, rr!, gg);
            return [o.y, o.sum];
          },
          ([xx, rr, gg]) => {
            const s = kx.add(xx!, rr!);
            return [kx.rmsNorm(s, gg), s];
          },
        ],
      ];
      for (const [name, fused, plain] of pairs) {
        const params = name === 'layer' ? [x, r, g, b] : [x, r, g];
        kx.tidy(() => {
          const [y1, s1] = fused(params);
          const [y2, s2] = plain(params);
          // The forward is the same arithmetic on the same stored sum, in every dtype.
          expectSameBits(s1, s2, `${name} sum`);
          expectSameBits(y1, y2, `${name} y`);
        });
        const g1 = kx.grad((p) => loss(...fused(p)), params);
        const g2 = kx.grad((p) => loss(...plain(p)), params);
        g1.forEach((gf, i) => {
          // dgamma/dbeta: the same per-block partials, so the same bits; dx: in float32 the same,
          // in halves ds is added before (fused) instead of after rounding the norm's dx.
          if (i >= 2 || dtype === 'float32') expectSameBits(gf, g2[i]!, `${name} grad ${i}`);
          else expectClose(gf, g2[i]!, tolerance(dtype), `${name} grad ${i}`);
        });
        kx.dispose([g1, g2]);
      }
      kx.dispose([x, r, g, b, w, w2]);
    });
  }
});

describe('fused gradients by finite differences', () => {
  const fd = { eps: 3e-3, atol: 2e-3, rtol: 1e-2, maxPoints: 40 };
  for (const d of [1, 3, 17, 300]) {
    it(`biasGelu D = ${d}: x, bias (erf and tanh)`, () => {
      const x = randomTensor([5, d], 10 + d, 2);
      const b = randomTensor([d], 20 + d);
      const w = randomTensor([5, d], 30 + d);
      for (const approximate of ['none', 'tanh'] as const) {
        expectGradOk((xx, bb) => kx.sum(kx.mul(kx.biasGelu(xx!, bb!, { approximate }), w)), [x, b], fd);
      }
      kx.dispose([x, b, w]);
    });
    // (D = 1 RMSNorm is sign(s)·γ: its derivative near s = 0 is beyond finite differences)
    it.skipIf(d === 1)(`addLayerNorm / addRmsNorm D = ${d}: x, residual, gamma, beta through y and sum`, () => {
      const rows = d > 100 ? 2 : 5;
      const x = randomTensor([rows, d], 40 + d, 2);
      const r = randomTensor([rows, d], 50 + d, 2);
      const g = randomTensor([d], 60 + d);
      const b = randomTensor([d], 70 + d);
      const w = randomTensor([rows, d], 80 + d);
      const w2 = randomTensor([rows, d], 90 + d);
      const ln = (xx: kx.Tensor, rr: kx.Tensor, gg: kx.Tensor, bb: kx.Tensor) => {
        const o = kx.addLayerNorm(xx, rr, gg, bb);
        return kx.add(kx.sum(kx.mul(o.y, w)), kx.sum(kx.mul(o.sum, w2)));
      };
      const rms = (xx: kx.Tensor, rr: kx.Tensor, gg: kx.Tensor) => {
        const o = kx.addRmsNorm(xx, rr, gg);
        return kx.add(kx.sum(kx.mul(o.y, w)), kx.sum(kx.mul(o.sum, w2)));
      };
      // x and residual get one gradient tensor, so they are checked in separate calls (grad returns
      // an aliased tensor for two parameters of one add, which checkGrad would dispose twice).
      expectGradOk((xx, gg, bb) => ln(xx!, r, gg!, bb!), [x, g, b], fd);
      expectGradOk((rr) => ln(x, rr!, g, b), [r], fd);
      expectGradOk((xx, gg) => rms(xx!, r, gg!), [x, g], fd);
      expectGradOk((rr) => rms(x, rr!, g), [r], fd);
      kx.dispose([x, r, g, b, w, w2]);
    });
  }

  it('only y used, only the sum used, and x passed as its own residual', () => {
    const x = randomTensor([4, 12], 1, 2);
    const r = randomTensor([4, 12], 2, 2);
    const w = randomTensor([4, 12], 3);
    const fd2 = { eps: 3e-3, atol: 2e-3, rtol: 1e-2 };
    expectGradOk((xx) => kx.sum(kx.mul(kx.addLayerNorm(xx!, r).y, w)), [x], fd2);
    expectGradOk((rr) => kx.sum(kx.mul(kx.addRmsNorm(x, rr!).sum, w)), [r], fd2);
    expectGradOk((xx) => kx.sum(kx.mul(kx.addLayerNorm(xx!, xx!).y, w)), [x], fd2);
    kx.dispose([x, r, w]);
  });
});

describe('fused ops: determinism and memory', () => {
  it('reduces dbias/dgamma/dbeta to the same bits whatever the thread count', () => {
    const threads = kx.buildInfo().threads;
    const x = randomTensor([300, 40], 8, 2);
    const r = randomTensor([300, 40], 9, 2);
    const g = randomTensor([40], 10);
    const b = randomTensor([40], 11);
    const w = randomTensor([300, 40], 12);
    const run = () => {
      const bg = kx.grad(([xx, bb]) => kx.sum(kx.mul(kx.biasGelu(xx!, bb!), w)), [x, b]);
      const ln = kx.grad(([xx, rr, gg, bb]) => kx.sum(kx.mul(kx.addLayerNorm(xx!, rr!, gg, bb).y, w)), [x, r, g, b]);
      const rm = kx.grad(([xx, rr, gg]) => kx.sum(kx.mul(kx.addRmsNorm(xx!, rr!, gg).y, w)), [x, r, g]);
      const out = [...bg, ...ln, ...rm].map((t) => Array.from(t.toFloat32Array()));
      kx.dispose([bg, ln, rm]);
      return out;
    };
    try {
      kx.setNumThreads(1);
      const one = run();
      kx.setNumThreads(5);
      expect(run()).toEqual(one);
    } finally {
      kx.setNumThreads(threads);
    }
    kx.dispose([x, r, g, b, w]);
  });

  it('leaves no tensors behind: statistics freed, or kept only while the tape needs them', () => {
    const x = randomTensor([4, 10], 1);
    const r = randomTensor([4, 10], 2);
    const g = randomTensor([10], 3);
    const before = kx.memory().tensors;
    kx.dispose(kx.addLayerNorm(x, r, g));
    kx.dispose(kx.addRmsNorm(x, r, g));
    kx.biasGelu(x, g).dispose();
    expect(kx.memory().tensors).toBe(before);
    const grads = kx.grad(([xx, gg]) => {
      const a = kx.addLayerNorm(xx!, r, gg);
      const m = kx.addRmsNorm(xx!, r, gg);
      return kx.sum(kx.add(kx.add(a.y, m.sum), kx.biasGelu(xx!, gg!)));
    }, [x, g]);
    expect(kx.memory().tensors).toBe(before + 2);
    kx.dispose([x, r, g, grads]);
  });

  it('float32 statistics for half inputs, as layer_norm', () => {
    const x = randomTensor([3, 50], 3, 4).cast('bfloat16');
    const r = randomTensor([3, 50], 4, 4).cast('bfloat16');
    const [, s, mean, rstd] = kx.runKernel('add_layer_norm', [x, r, null, null], { eps: 1e-5 });
    const [, mean2, rstd2] = kx.runKernel('layer_norm', [s, null, null], { eps: 1e-5 });
    expect(mean!.dtype).toBe('float32');
    expect(mean!.shape).toEqual([3]);
    expectSameBits(mean!, mean2!, 'mean');
    expectSameBits(rstd!, rstd2!, 'rstd');
    kx.dispose([x, r, s, mean, rstd, mean2, rstd2]);
  });

  it('empty rows and a zero-size batch', () => {
    const x = kx.zeros([0, 8]);
    const b = kx.zeros([8]);
    expect(kx.biasGelu(x, b).shape).toEqual([0, 8]);
    const { y, sum } = kx.addLayerNorm(x, x, b, b);
    expect(y.shape).toEqual([0, 8]);
    const g = kx.grad(([bb]) => kx.sum(kx.biasGelu(x, bb!)), [b]);
    expect(Array.from(g[0]!.toFloat32Array())).toEqual(new Array(8).fill(0));
    kx.dispose([x, b, y, sum, g]);
  });
});

describe('fused ops: errors', () => {
  const x = randomTensor([4, 6], 1);
  afterAll(() => x.dispose());

  it('rejects a bias, residual, gamma or beta of the wrong shape (E_SHAPE), also natively', () => {
    const b5 = kx.ones([5]);
    const b2d = kx.ones([1, 6]);
    const r = kx.ones([4, 5]);
    expectCode(() => kx.biasGelu(x, b5), 'E_SHAPE');
    expectCode(() => kx.biasGelu(x, b2d), 'E_SHAPE');
    expectCode(() => kx.addLayerNorm(x, r), 'E_SHAPE');
    expectCode(() => kx.addRmsNorm(x, r), 'E_SHAPE');
    expectCode(() => kx.addLayerNorm(x, x, b5), 'E_SHAPE');
    expectCode(() => kx.addLayerNorm(x, x, null, b2d), 'E_SHAPE');
    expectCode(() => kx.addRmsNorm(x, x, b5), 'E_SHAPE');
    const s = kx.scalar(2);
    expectCode(() => kx.biasGelu(s, s), 'E_SHAPE');
    expectCode(() => kx.addLayerNorm(s, s), 'E_SHAPE');
    kx.dispose([b5, b2d, r, s]);
  });

  it('rejects mismatched dtypes and integer inputs (E_DTYPE)', () => {
    const bh = kx.ones([6], { dtype: 'float16' });
    const xh = kx.ones([4, 6], { dtype: 'bfloat16' });
    const xi = kx.tensor(new Int32Array(24), [4, 6]);
    expectCode(() => kx.biasGelu(x, bh), 'E_DTYPE');
    expectCode(() => kx.addLayerNorm(x, xh), 'E_DTYPE');
    expectCode(() => kx.addRmsNorm(x, x, bh), 'E_DTYPE');
    expectCode(() => kx.addLayerNorm(x, x, null, bh), 'E_DTYPE');
    expectCode(() => kx.biasGelu(xi, bh), 'E_DTYPE');
    expectCode(() => kx.addLayerNorm(x, xi), 'E_DTYPE');
    kx.dispose([bh, xh, xi]);
  });

  it('rejects a bad eps or approximate and non-tensor arguments (E_ARG)', () => {
    const b = kx.ones([6]);
    expectCode(() => kx.addLayerNorm(x, x, null, null, -1), 'E_ARG');
    expectCode(() => kx.addRmsNorm(x, x, null, NaN), 'E_ARG');
    expectCode(() => kx.biasGelu(x, b, { approximate: 'fast' as 'tanh' }), 'E_ARG');
    expectCode(() => kx.runKernel('bias_gelu', [x, b], { approximate: 'fast' }), 'E_ARG');
    expectCode(() => kx.addLayerNorm(x, x, [1, 2] as unknown as kx.Tensor), 'E_ARG');
    expectCode(() => kx.biasGelu(x, [1] as unknown as kx.Tensor), 'E_ARG');
    b.dispose();
  });

  it('checks the backward ops natively', () => {
    const [, s, mean, rstd] = kx.runKernel('add_layer_norm', [x, x, null, null], { eps: 1e-5 });
    const b = kx.ones([6]);
    const dyBad = kx.ones([4, 5]);
    const dh = kx.ones([4, 6], { dtype: 'float16' });
    const short = kx.ones([3]);
    expectCode(() => kx.runKernel('bias_gelu_backward', [dyBad, x, b]), 'E_SHAPE');
    expectCode(() => kx.runKernel('bias_gelu_backward', [dh, x, b]), 'E_DTYPE');
    expectCode(() => kx.runKernel('add_layer_norm_backward', [dyBad, null, s, null, mean, rstd]), 'E_SHAPE');
    expectCode(() => kx.runKernel('add_layer_norm_backward', [x, dyBad, s, null, mean, rstd]), 'E_SHAPE');
    expectCode(() => kx.runKernel('add_layer_norm_backward', [x, dh, s, null, mean, rstd]), 'E_DTYPE');
    expectCode(() => kx.runKernel('add_layer_norm_backward', [x, null, s, null, short, rstd]), 'E_SHAPE');
    expectCode(() => kx.runKernel('add_layer_norm_backward', [x, null, s, null, s, rstd]), 'E_SHAPE');
    expectCode(() => kx.runKernel('add_rms_norm_backward', [x, null, s, null, short]), 'E_SHAPE');
    expectCode(() => kx.runKernel('add_rms_norm_backward', [x, null, s, null, dh]), 'E_DTYPE');
    kx.dispose([s, mean, rstd, b, dyBad, dh, short]);
  });
});

describe('fused ops on CUDA match the CPU', () => {
  const hasCuda = kx.cuda.isAvailable();
  it.skipIf(!hasCuda)('bias_gelu, add_layer_norm, add_rms_norm forward and backward, every dtype (no GPU: skipped)', () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as kx.DType[]) {
      for (const [rows, d] of [[64, 768], [33, 130], [5, 3000], [7, 1]]) {
        const make = (shape: number[], seed: number, scale = 1) => randomTensor(shape, seed, scale).cast(dtype);
        const x = make([rows, d], 1, 2);
        const r = make([rows, d], 2, 2);
        const g = make([d], 3);
        const b = make([d], 4);
        const w = make([rows, d], 5);
        const run = (dev: 'cpu' | 'cuda') =>
          kx.tidy(() => {
            const [xx, rr, gg, bb, ww] = [x, r, g, b, w].map((t) => t.to(dev));
            const bg = kx.valueAndGrad(([p, q]) => kx.sum(kx.mul(kx.biasGelu(p!, q!), ww!)), [xx!, bb!]);
            const ln = kx.valueAndGrad(([p, q, s, t]) => {
              const o = kx.addLayerNorm(p!, q!, s, t);
              return kx.add(kx.sum(kx.mul(o.y, ww!)), kx.sum(kx.mul(o.sum, ww!)));
            }, [xx!, rr!, gg!, bb!]);
            const rm = kx.valueAndGrad(([p, q, s]) => kx.sum(kx.mul(kx.addRmsNorm(p!, q!, s).y, ww!)), [xx!, rr!, gg!]);
            const outs = [kx.biasGelu(xx!, bb!), kx.addLayerNorm(xx!, rr!, gg, bb).y, kx.addRmsNorm(xx!, rr!, gg).y];
            return [...outs, ...bg.grads, ...ln.grads, ...rm.grads].map((t) => t.toFloat32Array());
          });
        const cpu = run('cpu');
        const gpu = run('cuda');
        cpu.forEach((want, i) => {
          const err = maxRelError(gpu[i]!, want);
          expect(err, `${dtype} [${rows}, ${d}] output ${i}`).toBeLessThanOrEqual(dtype === 'float32' ? 1e-5 : tolerance(dtype, 'reduction'));
        });
        kx.dispose([x, r, g, b, w]);
      }
    }
  });
});
