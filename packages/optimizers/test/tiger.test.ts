import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { Tiger, hfParamClass, tigerParamClass } from '@kexue/optimizers';

import { copy, expectCode, loadFixture, maxRelError, stepSlice } from './helpers.js';

const fx = loadFixture('optimizers');
afterAll(() => fx.dispose());

const f32 = (xs: number[]): number[] => Array.from(Float32Array.from(xs));

describe('Tiger: the test vector of ALGORITHMS.md §1.10 (k = 2, a NaN step)', () => {
  it('matches m and W at every micro-step to 1e-6', () => {
    const W = kx.tensor([0.1, -0.2, 0.3, 0.05], [2, 2]);
    const opt = new Tiger({ learningRate: 1e-3, beta: 0.965, weightDecay: 0.01, gradAccumSteps: 2 });
    const grads = [
      [1, -1, 0.5, 0],
      [-0.5, -1, 0.25, 0],
      [0.3, NaN, 0.1, 0.2],
      [0.2, 0.2, -0.2, -0.2],
    ];
    const expected = [
      { m: [0.0175, -0.0175, 0.00875, 0], W: [0.1, -0.2, 0.3, 0.05] },
      { m: [0.00875, -0.035, 0.013125, 0], W: [0.099811, -0.199811, 0.299811, 0.05] },
      { m: [0.00875, -0.035, 0.013125, 0], W: [0.098813, -0.197813, 0.296813, 0.0495] },
      { m: [0.01225, -0.0315, 0.009625, -0.0035], W: [0.098626, -0.197626, 0.296625, 0.049687] },
    ];
    grads.forEach((g, t) => {
      const grad = kx.tensor(g, [2, 2]);
      const r = opt.step({ kernel: W }, { kernel: grad });
      grad.dispose();
      expect(r.skipped).toEqual(t === 2 ? ['kernel'] : []);
      const state = opt.state();
      const m = state.tensors['kernel.m']!.toFloat32Array();
      kx.dispose(state.tensors);
      // The vector is printed to 6 decimals: agreement to its last digit (5e-7 absolute) is the most
      // it can show; on a scale of ~0.3 that is ≤ 1e-6 relative.
      Array.from(m).forEach((v, i) => expect(Math.abs(v - expected[t]!.m[i]!)).toBeLessThanOrEqual(5e-7 + 1e-7));
      Array.from(W.toFloat32Array()).forEach((v, i) => expect(Math.abs(v - expected[t]!.W[i]!)).toBeLessThanOrEqual(5e-7 + 1e-7));
    });
    W.dispose();
    opt.dispose();
  });
});

describe('Tiger vs the float64 reference of tools/golden (20 micro-steps)', () => {
  for (const c of fx.cases.filter((c) => c.optimizer === 'tiger')) {
    it(`${c.name}: ${JSON.stringify(c.options)}`, () => {
      const names = Object.keys(c.params);
      const params = Object.fromEntries(names.map((n) => [n, copy(fx.get(`${c.name}.init.${n}`))]));
      const opt = new Tiger(c.options);
      let worstTheta = 0;
      let worstM = 0;
      for (let t = 0; t < c.steps; t++) {
        const grads = Object.fromEntries(names.map((n) => [n, stepSlice(fx.get(`${c.name}.grad.${n}`), t)]));
        const r = opt.step(params, grads);
        kx.dispose(grads);
        const bad = (c.nonFinite ?? []).filter(([s]) => s === t).map(([, n]) => n);
        expect(r.skipped.sort()).toEqual(bad.sort());
        const state = opt.state();
        for (const n of names) {
          worstTheta = Math.max(worstTheta, maxRelError(params[n]!, stepSlice(fx.get(`${c.name}.theta.${n}`), t)));
          worstM = Math.max(worstM, maxRelError(state.tensors[`${n}.m`]!, stepSlice(fx.get(`${c.name}.m.${n}`), t)));
        }
        kx.dispose(state.tensors);
      }
      console.log(`${c.name}: worst max-rel error over 20 steps: theta ${worstTheta.toExponential(2)}, m ${worstM.toExponential(2)}`);
      expect(worstTheta).toBeLessThanOrEqual(1e-6);
      expect(worstM).toBeLessThanOrEqual(1e-6);
      // A zero-initialised matrix (RMS 0) and an all-zero embedding row never move.
      expect(Array.from(params['zero.kernel']!.toFloat32Array()).every((v) => v === 0)).toBe(true);
      expect(Array.from(params.word_embeddings!.toFloat32Array().slice(8, 12))).toEqual([0, 0, 0, 0]);
      kx.dispose(params);
      opt.dispose();
    });
  }
});

describe('Tiger: parameter classes', () => {
  it('classifies by name as the reference code', () => {
    expect(tigerParamClass('dense/bias')).toBe('bias');
    expect(tigerParamClass('layer_norm.beta')).toBe('bias');
    expect(tigerParamClass('ln.gamma')).toBe('scale');
    expect(tigerParamClass('embeddings.gamma')).toBe('scale');
    expect(tigerParamClass('token_embeddings')).toBe('embedding');
    expect(tigerParamClass('attention.query.kernel')).toBe('matrix');
    expect(hfParamClass('encoder.layer.0.output.LayerNorm.weight')).toBe('scale');
    expect(hfParamClass('encoder.layer.0.output.dense.bias')).toBe('bias');
    expect(hfParamClass('embeddings.word_embeddings.weight')).toBe('embedding');
    expect(hfParamClass('encoder.embed_tokens.weight')).toBe('embedding');
    expect(hfParamClass('encoder.layer.0.output.dense.weight')).toBe('matrix');
  });

  it('uses 0.5·lr without decay for bias-like tensors, α·RMS for matrices, per-row RMS for embeddings', () => {
    const lr = 0.01;
    const wd = 0.1;
    const init = [0.5, -0.25, 2, 1];
    const g = [1, 1, -1, -1];
    const run = (name: string, shape: number[], cls?: 'bias' | 'scale' | 'embedding' | 'matrix'): number[] => {
      const p = kx.tensor(init, shape);
      const grad = kx.tensor(g, shape);
      const opt = new Tiger({ learningRate: lr, weightDecay: wd, ...(cls ? { paramClass: { [name]: cls } } : {}) });
      opt.step({ [name]: p }, { [name]: grad });
      const out = Array.from(p.toFloat32Array());
      kx.dispose([p, grad]);
      opt.dispose();
      return out;
    };
    const s = g.map(Math.sign);
    const bias = init.map((x, i) => x - 0.5 * lr * s[i]!);
    const rmsAll = Math.sqrt(init.reduce((a, x) => a + x * x, 0) / 4);
    const matrix = init.map((x, i) => x - lr * rmsAll * (s[i]! + wd * x));
    const rows = [Math.sqrt((0.25 + 0.0625) / 2), Math.sqrt((4 + 1) / 2)];
    const emb = init.map((x, i) => x - lr * rows[i >> 1]! * (s[i]! + wd * x));
    expect(run('dense.bias', [4])).toEqual(f32(bias));
    expect(run('norm.gamma', [4])).toEqual(f32(bias));
    expect(run('kernel', [2, 2])).toEqual(f32(matrix));
    expect(run('word_embeddings', [2, 2])).toEqual(f32(emb));
    // The explicit class wins over the name.
    expect(run('kernel', [2, 2], 'embedding')).toEqual(f32(emb));
    expect(run('word_embeddings', [2, 2], 'bias')).toEqual(f32(bias));
  });

  it('shrinks toward 1 for norm scales and toward 0 otherwise on NaN/Inf, keeping the momentum', () => {
    for (const [name, centre] of [['ln.gamma', 1], ['ln.beta', 0], ['kernel', 0], ['word_embeddings', 0]] as const) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const p = kx.tensor([0.5, 2, -1, 1.5], [2, 2]);
        const opt = new Tiger({ shrinkRatio: 0.9, paramClass: (n) => (n === 'ln.gamma' ? 'scale' : undefined) });
        const g1 = kx.tensor([1, -1, 1, -1], [2, 2]);
        opt.step({ [name]: p }, { [name]: g1 });
        const before = Array.from(p.toFloat32Array());
        const m0 = opt.state();
        const m0v = Array.from(m0.tensors[`${name}.m`]!.toFloat32Array());
        const g2 = kx.tensor([0.1, bad, 0.2, 0.3], [2, 2]);
        const r = opt.step({ [name]: p }, { [name]: g2 });
        expect(r.skipped).toEqual([name]);
        expect(Array.from(p.toFloat32Array())).toEqual(f32(before.map((x) => (x - centre) * 0.9 + centre)));
        const m1 = opt.state();
        expect(Array.from(m1.tensors[`${name}.m`]!.toFloat32Array())).toEqual(m0v);
        kx.dispose([p, g1, g2, m0.tensors, m1.tensors]);
        opt.dispose();
      }
    }
  });

  it('updates float16 and bfloat16 parameters (float32 state) like float32 ones, to the dtype', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const init = [0.5, -0.25, 0.75, 1, -2, 0.125];
      const ref = kx.tensor(init, [2, 3]);
      const p = kx.tensor(init, [2, 3], { dtype });
      const opt32 = new Tiger({ learningRate: 0.01 });
      const opt16 = new Tiger({ learningRate: 0.01 });
      for (let t = 0; t < 5; t++) {
        const g = kx.tensor([1, -1, 0.5, -0.5, 0.25, t - 2], [2, 3]);
        const gh = g.cast(dtype);
        opt32.step({ w: ref }, { w: g });
        opt16.step({ w: p }, { w: gh });
        kx.dispose([g, gh]);
      }
      expect(p.dtype).toBe(dtype);
      expect(maxRelError(p, ref)).toBeLessThanOrEqual(dtype === 'float16' ? 4 * 2 ** -10 : 4 * 2 ** -7);
      const s = opt16.state();
      expect(s.tensors['w.m']!.dtype).toBe('float32');
      kx.dispose([p, ref, s.tensors]);
      opt32.dispose();
      opt16.dispose();
    }
  });

  it('rejects bad options (E_ARG)', () => {
    expectCode(() => new Tiger({ learningRate: -1e-3 }), 'E_ARG');
    expectCode(() => new Tiger({ lr: 1e-3 } as never), 'E_ARG');
    expectCode(() => new Tiger({ gradAccumSteps: 0 }), 'E_ARG');
    expectCode(() => new Tiger({ gradAccumSteps: 1.5 }), 'E_ARG');
    expectCode(() => new Tiger({ beta: 1.5 }), 'E_ARG');
    expectCode(() => new Tiger({ schedule: {} }), 'E_ARG');
    expectCode(() => new Tiger({ paramClass: { w: 'vector' as never } }), 'E_ARG');
  });
});
