/**
 * valueAndGrad's onGradient: each parameter's gradient is announced once, as soon as it is complete
 * (before the backward pass reaches the ops recorded before its first use), with its final value;
 * what data-parallel training overlaps its all-reduce with.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { randomTensor } from './helpers.js';

describe('valueAndGrad onGradient', () => {
  it('announces each gradient once, last layers first, with its final value', () => {
    const x = randomTensor([5], 1);
    const params = { w1: randomTensor([5], 2), w2: randomTensor([5], 3), w3: randomTensor([5], 4), unused: randomTensor([3], 5) };
    const announced: { index: number; values: number[] }[] = [];
    const { value, grads } = kx.valueAndGrad(
      (p) => {
        const h1 = kx.tanh(kx.mul(x, p.w1));
        const h2 = kx.tanh(kx.mul(h1, p.w2));
        // w1 is used again by the last op: its gradient is complete only at its first use
        return kx.add(kx.sum(kx.mul(h2, p.w3)), kx.sum(kx.mul(p.w1, p.w1)));
      },
      params,
      { onGradient: (index, g) => announced.push({ index, values: Array.from(g.dataSync()) }) },
    );
    expect(announced.map((a) => a.index)).toEqual([2, 1, 0, 3]);
    const names = Object.keys(params) as (keyof typeof params)[];
    for (const a of announced) expect(a.values).toEqual(Array.from(grads[names[a.index]!].dataSync()));
    // and the gradients are those of the pass without the hook
    const plain = kx.grad((p) => kx.add(kx.sum(kx.mul(kx.tanh(kx.mul(kx.tanh(kx.mul(x, p.w1)), p.w2)), p.w3)), kx.sum(kx.mul(p.w1, p.w1))), params);
    for (const k of names) expect(Array.from(grads[k].dataSync())).toEqual(Array.from(plain[k].dataSync()));
    kx.dispose([x, Object.values(params), value, Object.values(grads), Object.values(plain)]);
  });

  it('a gradient kept from the hook outlives the pass', () => {
    const w = kx.tensor([1, 2, 3]);
    let kept: kx.Tensor | null = null;
    const g = kx.grad((p) => kx.sum(kx.mul(p[0]!, p[0]!)), [w], { onGradient: (_, t) => (kept = kx.keep(kx.mul(t, 1))) });
    expect(Array.from(kept!.dataSync())).toEqual([2, 4, 6]);
    kx.dispose([w, g, kept!]);
  });
});
