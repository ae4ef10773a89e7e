/**
 * Compiled optimizer steps on a GPU (fused groups on the CUDA executor): Tiger with clipping on
 * the device and its guard's flags handed back by each replay equals the eager optimizer step after
 * step. Skipped with the reason where no GPU answers; compile.test.ts covers the CPU.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { Tiger } from '@kexue/optimizers';

import { hostValues as values } from './helpers.js';

const gpu = kx.cuda.isAvailable();

describe.skipIf(!gpu)('a compiled Tiger step on CUDA', () => {
  it('equals the eager step: clipped on the device, a non-finite step skipped, the same counters', () => {
    const device = 'cuda';
    const run = (compiled: boolean) => {
      const w = kx.tensor([0.1, -0.2, 0.3, 0.05, 0.4, -0.1], [3, 2], { device });
      const opt = new Tiger({ learningRate: 0.01, clipNorm: 0.1, gradAccumSteps: 2 });
      const f = (x: kx.Tensor): kx.Tensor => {
        const { value, grads } = kx.valueAndGrad(([p]) => kx.sum(kx.pow(kx.matmul(x, p!), 2)), [w]);
        opt.step({ w }, { w: grads[0]! });
        kx.dispose(grads);
        return value;
      };
      const step = compiled ? kx.compile(f) : f;
      for (let i = 0; i < 6; i++) {
        const x = kx.tensor([1, i === 3 ? Number.NaN : 0.5, -1, 2, 0.25, i], [2, 3], { device });
        kx.tidy(() => void step(x));
        x.dispose();
      }
      const state = opt.state();
      const out = { w: values(w), m: values(state.tensors['w.m']!), meta: state.meta };
      kx.dispose([w, ...Object.values(state.tensors)]);
      return out;
    };
    const [eager, compiled] = [run(false), run(true)];
    expect(compiled.meta).toEqual(eager.meta);
    compiled.w.forEach((v, i) => expect(v).toBeCloseTo(eager.w[i]!, 6));
    compiled.m.forEach((v, i) => expect(v).toBeCloseTo(eager.m[i]!, 6));
  });
});
