import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { gradientRule } from '../src/tape.js';
import { expectCode, randomTensor } from './helpers.js';

describe('autograd', () => {
  it('returns the value and the gradient of every parameter, by list or by name', () => {
    const x = kx.tensor([1, 2, 3]);
    const w = kx.tensor([4, 5, 6]);
    const { value, grads } = kx.valueAndGrad(([a, b]) => kx.sum(kx.mul(a!, b!)), [x, w]);
    expect(value.item()).toBe(32);
    expect(Array.from(grads[0]!.dataSync())).toEqual([4, 5, 6]);
    expect(Array.from(grads[1]!.dataSync())).toEqual([1, 2, 3]);
    const named = kx.grad((p) => kx.sum(kx.mul(p.x, p.x)), { x, w });
    expect(Array.from(named.x.dataSync())).toEqual([2, 4, 6]);
    expect(Array.from(named.w.dataSync())).toEqual([0, 0, 0]); // unused: zeros
    kx.dispose([x, w, value, grads, named]);
  });

  it('frees every intermediate, even those disposed or tidied inside fn', () => {
    const x = randomTensor([4, 5], 1);
    const before = kx.memory().tensors;
    const { value, grads } = kx.valueAndGrad(([a]) => {
      const h = kx.tidy(() => kx.exp(kx.mul(a!, 0.5))); // the tape still needs tidy's intermediates
      const s = kx.sum(kx.mul(h, h));
      h.dispose();
      return s;
    }, [x]);
    // d/dx sum(exp(x/2)^2) = exp(x)
    const want = Array.from(x.toFloat32Array(), Math.exp);
    Array.from(grads[0]!.toFloat32Array()).forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 4));
    expect(kx.memory().tensors).toBe(before + 2);
    kx.dispose([x, value, grads]);
  });

  it('gives parameters that receive one shared gradient tensor handles of their own', () => {
    const a = kx.tensor([1, 2]);
    const b = kx.tensor([3, 4]);
    const [ga, gb] = kx.grad(([p, q]) => kx.sum(kx.add(p!, q!)), [a, b]);
    expect(ga).not.toBe(gb);
    ga!.dispose();
    expect(Array.from(gb!.dataSync())).toEqual([1, 1]);
    kx.dispose([a, b, gb]);
  });

  it('starts the backward pass from outputGradient: scaled gradients, the value unscaled', () => {
    const x = kx.tensor([1, 2, 3]);
    const { value, grads } = kx.valueAndGrad(([a]) => kx.sum(kx.mul(a!, a!)), [x], { outputGradient: 1024 });
    expect(value.item()).toBe(14);
    expect(Array.from(grads[0]!.dataSync())).toEqual([2048, 4096, 6144]);
    for (const bad of [Infinity, NaN, '2' as unknown as number]) {
      expectCode(() => kx.grad(([a]) => kx.sum(a!), [x], { outputGradient: bad }), 'E_ARG');
    }
    kx.dispose([x, value, grads]);
  });

  it('accumulates gradients of a tensor used many times', () => {
    const x = kx.tensor([0.5, -1.5]);
    const g = kx.grad(([a]) => kx.sum(kx.add(kx.mul(a!, a!), kx.mul(a!, 3))), [x]);
    expect(Array.from(g[0]!.dataSync())).toEqual([4, 0]);
    kx.dispose([x, g]);
  });

  it('keeps the parameter dtype for half parameters', () => {
    const x = kx.tensor([1, 2, 3], [3], { dtype: 'bfloat16' });
    const g = kx.grad(([a]) => kx.sum(kx.mul(a!, a!)), [x]);
    expect(g[0]!.dtype).toBe('bfloat16');
    expect(Array.from(g[0]!.toFloat32Array())).toEqual([2, 4, 6]);
    kx.dispose([x, g]);
  });

  it('rejects a non-scalar value, integer parameters and nesting', () => {
    const x = kx.tensor([1, 2]);
    expectCode(() => kx.valueAndGrad(([a]) => kx.mul(a!, 2), [x]), 'E_SHAPE');
    expectCode(() => kx.valueAndGrad(() => kx.sum(x), [kx.tensor(new Int32Array([1]))]), 'E_DTYPE');
    expectCode(() => kx.valueAndGrad(([a]) => kx.grad(([b]) => kx.sum(b!), [a!])[0]!, [x]), 'E_ARG');
    // a failed call leaves no tape behind
    const g = kx.grad(([a]) => kx.sum(a!), [x]);
    expect(Array.from(g[0]!.dataSync())).toEqual([1, 1]);
    kx.dispose([x, g]);
  });

  it('checkGrad passes a correct rule and catches a wrong one', () => {
    const x = randomTensor([3, 4], 7);
    const w = randomTensor([12], 8);
    const fn = (a: kx.Tensor) => kx.sum(kx.mul(kx.reshape(a, [12]), w));
    expect(kx.checkGrad(fn, [x]).ok).toBe(true);
    const rule = gradientRule('reshape')!;
    kx.registerGradient('reshape', (dys, rec) => rule(dys, rec).map((g) => (g ? kx.mul(g, 1.05) : g)));
    try {
      const r = kx.checkGrad(fn, [x]);
      expect(r.ok).toBe(false);
      expect(r.maxRelError).toBeGreaterThan(0.04);
      expect(r.worst).not.toBeNull();
    } finally {
      kx.registerGradient('reshape', rule);
    }
    kx.dispose([x, w]);
  });
});
