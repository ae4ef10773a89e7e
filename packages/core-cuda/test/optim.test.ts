/**
 * The fused optimizer updates of ops/optim.ts, called directly: the group ops against one call per
 * parameter, the checks, and globalNorm. The optimizers built on them (@kexue/optimizers) are tested
 * in packages/optimizers/test; the same ops on CUDA in cuda_parity.test.ts (parity_cases.ts).
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode, randomTensor } from './helpers.js';

const shapes: Record<string, number[]> = { 'a.kernel': [5, 3], 'a.bias': [3], embeddings: [4, 6] };

function makeParams(): Record<string, kx.Tensor> {
  return Object.fromEntries(Object.entries(shapes).map(([n, s], i) => [n, randomTensor(s, 1 + i, 0.5)]));
}
function makeGrads(seed: number): Record<string, kx.Tensor> {
  return Object.fromEntries(Object.entries(shapes).map(([n, s], i) => [n, randomTensor(s, 100 * seed + i)]));
}
function values(ts: Record<string, kx.Tensor>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, Array.from(t.toFloat32Array())]));
}
/** A tensor's raw bytes. */
const bits = (t: kx.Tensor) => Buffer.from(t.dataSync().buffer);

describe('adamwUpdateGroup: one call for many parameters', () => {
  it('gives the bits of one adamwUpdate per parameter', () => {
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradScale: 0.5 };
    const one = makeParams();
    const many = makeParams();
    const state = (ps: Record<string, kx.Tensor>) =>
      Object.fromEntries(Object.entries(ps).map(([n, p]) => [n, { m: kx.zeros(p.shape), v: kx.zeros(p.shape) }]));
    const s1 = state(one);
    const s2 = state(many);
    for (let step = 1; step <= 3; step++) {
      const g = makeGrads(step);
      for (const n of Object.keys(one)) kx.adamwUpdate(one[n]!, g[n]!, s1[n]!.m, s1[n]!.v, { ...o, step });
      kx.adamwUpdateGroup(
        Object.keys(many).map((n) => ({ param: many[n]!, grad: g[n]!, m: s2[n]!.m, v: s2[n]!.v })),
        { ...o, step },
      );
      kx.dispose(g);
    }
    for (const n of Object.keys(one)) {
      expect(bits(many[n]!).equals(bits(one[n]!)), n).toBe(true);
      expect(bits(s2[n]!.m).equals(bits(s1[n]!.m)), `${n}.m`).toBe(true);
      expect(bits(s2[n]!.v).equals(bits(s1[n]!.v)), `${n}.v`).toBe(true);
    }
    kx.dispose([one, many, Object.values(s1).map((s) => [s.m, s.v]), Object.values(s2).map((s) => [s.m, s.v])]);
  });

  it('checks every parameter before any moves', () => {
    const ps = makeParams();
    const before = values(ps);
    const g = makeGrads(1);
    const slots = Object.keys(ps).map((n) => ({ param: ps[n]!, grad: g[n]!, m: kx.zeros(ps[n]!.shape), v: kx.zeros(ps[n]!.shape) }));
    const bad = [...slots.slice(0, 2), { ...slots[2]!, v: kx.zeros([1]) }];
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };
    expectCode(() => kx.adamwUpdateGroup(bad, o), 'E_SHAPE');
    expect(values(ps)).toEqual(before);
    // straight to the op: tensors not in quadruples
    expectCode(() => kx.runKernel('optim_adamw_group', [ps['a.bias']!, g['a.bias']!, slots[1]!.m], { ...o }), 'E_ARG');
    expect(values(ps)).toEqual(before);
    kx.dispose([ps, g, slots.map((s) => [s.m, s.v]), bad[2]!.v]);
  });
});

describe('tigerUpdateGroup: one call for many parameters', () => {
  it('gives the bits and verdicts of one tigerUpdate per parameter, and checks everything first', () => {
    const o = { lr: 1e-3, beta: 0.965, accumSteps: 1, first: true, update: true, rms: 'tensor' as const, weightDecay: 0.01, shrink: 0.99, centre: 0 };
    const one = makeParams();
    const many = makeParams();
    const mom = (ps: Record<string, kx.Tensor>) => Object.fromEntries(Object.entries(ps).map(([n, p]) => [n, kx.zeros(p.shape)]));
    const m1 = mom(one);
    const m2 = mom(many);
    const names = Object.keys(one);
    for (let step = 1; step <= 3; step++) {
      const g = makeGrads(step);
      if (step === 2) {
        g['a.bias']!.dispose();
        g['a.bias'] = kx.tensor([0.1, NaN, 0.2], [3]); // the guard skips this one
      }
      const each = names.map((n) => {
        const f = kx.tigerUpdate(one[n]!, g[n]!, m1[n]!, o);
        const v = f.dataSync()[0];
        f.dispose();
        return v;
      });
      const flags = kx.tigerUpdateGroup(names.map((n) => ({ param: many[n]!, grad: g[n]!, m: m2[n]! })), o);
      expect(flags.shape).toEqual([names.length]);
      expect(Array.from(flags.dataSync())).toEqual(each);
      expect(each).toEqual(names.map((n) => (step === 2 && n === 'a.bias' ? 0 : 1)));
      kx.dispose([flags, g]);
    }
    for (const n of names) {
      expect(bits(many[n]!).equals(bits(one[n]!)), n).toBe(true);
      expect(bits(m2[n]!).equals(bits(m1[n]!)), `${n}.m`).toBe(true);
    }
    const before = values(many);
    const g = makeGrads(9);
    const bad = names.map((n) => ({ param: many[n]!, grad: g[n]!, m: n === 'embeddings' ? kx.zeros([2]) : m2[n]! }));
    expectCode(() => kx.tigerUpdateGroup(bad, o), 'E_SHAPE');
    expectCode(() => kx.tigerUpdateGroup([], o), 'E_ARG');
    expect(values(many)).toEqual(before);
    kx.dispose([one, many, Object.values(m1), Object.values(m2), g, bad[2]!.m]);
  });
});

describe('the optimizer ops check what they rely on', () => {
  it('the native kernels refuse bad shapes, dtypes and attributes', () => {
    const p = kx.zeros([2, 3]);
    const m = kx.zeros([3, 2]);
    expectCode(() => kx.runKernel('optim_tiger', [p, p, m], { lr: 1e-3 }), 'E_SHAPE');
    expectCode(() => kx.runKernel('optim_tiger', [p, p, kx.zeros([2, 3], { dtype: 'float16' })], { lr: 1e-3 }), 'E_DTYPE');
    expectCode(() => kx.runKernel('optim_tiger', [p, p, p], { lr: -1 }), 'E_ARG');
    expectCode(() => kx.runKernel('optim_tiger', [p, p, p], { rms: 'rows' }), 'E_ARG');
    expectCode(() => kx.runKernel('optim_adamw', [p, p, p, p], { step: 0 }), 'E_ARG');
    expectCode(() => kx.runKernel('optim_sgd', [p, p, null], { momentum: 0.9 }), 'E_ARG');
    expectCode(() => kx.tigerUpdate(p, p, m, { lr: 1, beta: 0.9, accumSteps: 1, first: true, update: true, rms: 'tensor', weightDecay: 0, shrink: 0.9, centre: 0 }), 'E_SHAPE');
    kx.dispose([p, m]);
  });

  it('an update inside a gradient tape is E_ARG: it would mutate what the tape recorded', () => {
    const p = kx.zeros([2, 3]);
    const m = kx.zeros([2, 3]);
    expectCode(() => kx.valueAndGrad(([w]) => {
      kx.lionUpdate(w!, w!, m, { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0 });
      return kx.sum(w!);
    }, [p]), 'E_ARG');
    kx.dispose([p, m]);
  });
});

describe('globalNorm', () => {
  it('is the L2 norm over all the tensors, NaN or Infinity with a non-finite element', () => {
    expect(kx.globalNorm([kx.tensor([3, 4], [2]), kx.tensor([12], [1])])).toBe(13);
    expect(kx.globalNorm([kx.tensor([1, Number.NaN])])).toBeNaN();
    expect(kx.globalNorm([kx.tensor([1, Number.POSITIVE_INFINITY])])).toBe(Number.POSITIVE_INFINITY);
  });
});
