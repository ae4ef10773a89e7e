/**
 * Tiger on a GPU: the guard's flags stay on the device through step() and are read once, later
 * (when `skipped` is asked for, at the next step, or by state()), so the host never waits for an
 * update. Skipped with the reason where no GPU answers (the GPU check runs every *.cuda.test.ts);
 * tiger.test.ts covers the same arithmetic on the CPU, where the flags are read at once.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { Tiger } from '@kexue/optimizers';

import { hostValues as values } from './helpers.js';

const gpu = kx.cuda.isAvailable();

describe.skipIf(!gpu)('Tiger on CUDA', () => {
  it('reads the step flags later, once, with the same verdicts and counters as the CPU', () => {
    const run = (device: string) => {
      const params = {
        kernel: kx.tensor([0.1, -0.2, 0.3, 0.05], [2, 2], { device }),
        bias: kx.tensor([0.5, -0.5], [2], { device }),
      };
      const opt = new Tiger({ learningRate: 1e-3 });
      const skipped: string[][] = [];
      const live: number[] = [];
      for (const bad of [false, true, false]) {
        const grads = {
          kernel: kx.tensor([1, bad ? NaN : -1, 0.5, 0], [2, 2], { device }),
          bias: kx.tensor([0.25, -0.25], [2], { device }),
        };
        const r = opt.step(params, grads);
        live.push(kx.memory().tensors);
        skipped.push([...r.skipped]);
        kx.dispose(Object.values(grads));
      }
      const state = opt.state();
      const out = {
        skipped,
        live,
        paramSteps: state.meta.paramSteps,
        kernel: values(params.kernel),
        bias: values(params.bias),
      };
      kx.dispose([Object.values(params), Object.values(state.tensors)]);
      opt.dispose();
      return out;
    };
    const before = kx.memory().tensors;
    const cpu = run('cpu');
    const cuda = run('cuda');
    expect(cuda.skipped).toEqual([[], ['kernel'], []]);
    expect(cuda.skipped).toEqual(cpu.skipped);
    expect(cuda.paramSteps).toEqual(cpu.paramSteps);
    expect(cuda.paramSteps).toEqual({ kernel: 2, bias: 3 });
    cuda.kernel.forEach((v, i) => expect(v).toBeCloseTo(cpu.kernel[i]!, 6));
    cuda.bias.forEach((v, i) => expect(v).toBeCloseTo(cpu.bias[i]!, 6));
    // on the GPU each step leaves its two flags alive until they are read
    expect(cuda.live.map((n, i) => n - cpu.live[i]!)).toEqual([2, 2, 2]);
    expect(kx.memory().tensors).toBe(before);
  });
});
