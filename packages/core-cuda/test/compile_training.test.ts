/**
 * What a compiled training step needs beyond plain ops: dropout drawn afresh at every replay
 * (its Philox key a per-replay attribute, kx.dynamicAttrs), tensors handed back by every replay
 * (kx.replayOutput), and global-norm clipping's factor computed on the device (kx.clipFactor).
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode, randomTensor } from './helpers.js';

/** One step of a two-dropout MLP's squared error and its gradient; returns [loss, dw, a third draw's mask on ones]. */
function dropoutStep(w: kx.Tensor, rng: kx.Philox) {
  return (x: kx.Tensor, y: kx.Tensor): kx.Tensor[] => {
    const { value, grads } = kx.valueAndGrad(([wt]) => {
      const h = kx.dropout(kx.dropout(kx.tanh(kx.matmul(x, wt!)), 0.3, rng), 0.5, rng);
      return kx.mean(kx.pow(kx.sub(h, y), 2));
    }, [w]);
    return [value, grads[0]!, kx.dropout(kx.ones([4, 8]), 0.5, rng)];
  };
}

describe('kx.compile: dropout in a compiled step', () => {
  it('each replay draws the masks an eager step draws at that point of the generator, forward and backward', () => {
    const w = randomTensor([6, 8], 1);
    const x = randomTensor([5, 6], 2);
    const y = randomTensor([5, 8], 3);
    const eagerRng = new kx.Philox(11);
    const compiledRng = new kx.Philox(11);
    const eager = dropoutStep(w, eagerRng);
    const compiled = kx.compile(dropoutStep(w, compiledRng));
    for (let i = 0; i < 5; i++) {
      kx.tidy(() => {
        const e = eager(x, y).map((t) => t.toFloat32Array());
        const c = compiled(x, y).map((t) => t.toFloat32Array());
        // the same masks: equal bits (loss, gradient, the third mask)
        for (let k = 0; k < 3; k++) expect(c[k], `step ${i}, output ${k}`).toEqual(e[k]);
        expect(compiledRng.offset).toBe(eagerRng.offset);
      });
    }
    expect(compiled.stats).toEqual({ traces: 1, replays: 4 });
    // the masks differ from step to step
    const masks = [0, 1].map(() => kx.tidy(() => compiled(x, y)[2]!.toFloat32Array()));
    expect(masks[0]).not.toEqual(masks[1]);
    kx.dispose([w, x, y]);
  });

  it('a fixed key repeats its mask at every replay, as eagerly', () => {
    const x = randomTensor([64], 4);
    const f = kx.compile((t: kx.Tensor) => kx.dropout(t, 0.5, { seed: 3, offset: 7 }));
    const expected = kx.tidy(() => kx.dropout(x, 0.5, { seed: 3, offset: 7 }).toFloat32Array());
    for (let i = 0; i < 3; i++) expect(kx.tidy(() => f(x).toFloat32Array())).toEqual(expected);
    expect(f.stats.replays).toBe(2);
    kx.dispose(x);
  });
});

describe('kx.replayOutput', () => {
  it('hands every replay its own tensor after the program ran; the traced call hands nothing', () => {
    const received: number[][] = [];
    const f = kx.compile((a: kx.Tensor) => {
      const side = kx.mul(a, 3);
      kx.replayOutput(side, (t) => {
        received.push([...t.toFloat32Array()]);
        t.dispose();
      });
      return kx.add(side, 1);
    });
    for (const v of [1, 2, 5]) {
      const a = kx.tensor([v, -v], [2]);
      expect(kx.tidy(() => [...f(a).toFloat32Array()])).toEqual([3 * v + 1, -3 * v + 1]);
      a.dispose();
    }
    expect(received).toEqual([
      [6, -6],
      [15, -15],
    ]);
  });

  it('E_ARG for a tensor no op of the traced function made', () => {
    const outside = kx.ones([2]);
    const f = kx.compile((a: kx.Tensor) => {
      kx.replayOutput(outside, () => undefined);
      return kx.add(a, 1);
    });
    expect(expectCode(() => f(kx.ones([2])), 'E_ARG').message).toMatch(/not made by an op/);
    outside.dispose();
  });
});

describe('kx.clipFactor and kx.globalNormTensor', () => {
  it('min(1, maxNorm / (norm·scale + 1e-6)), 1 for a non-finite norm, as Optimizer.step computes it on the host', () => {
    const factor = (norm: number, maxNorm: number, scale = 1) => kx.tidy(() => kx.clipFactor(kx.tensor([norm], []), maxNorm, scale).item());
    expect(factor(10, 1)).toBeCloseTo(1 / (10 + 1e-6), 7);
    expect(factor(10, 1, 0.5)).toBeCloseTo(1 / (5 + 1e-6), 7);
    expect(factor(0.5, 1)).toBe(1);
    expect(factor(Number.NaN, 1)).toBe(1);
    expect(factor(Number.POSITIVE_INFINITY, 1)).toBe(1);
    const xs = [kx.tensor([3], [1]), kx.tensor([4], [1])];
    expect(kx.tidy(() => kx.globalNormTensor(xs).item())).toBe(kx.globalNorm(xs));
    expectCode(() => kx.clipFactor(xs[0]!, 0), 'E_ARG');
    expectCode(() => kx.clipFactor(kx.ones([2]), 1), 'E_SHAPE');
    expectCode(() => kx.globalNormTensor([]), 'E_ARG');
    kx.dispose(xs);
  });
});
