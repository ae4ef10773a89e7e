/**
 * Optimizer steps inside kx.compile: a compiled training step traces once and replays with each
 * step's own numbers (learning rate from the schedule, AdamW's bias-correction step), which the
 * optimizer recomputes on the host before every replay (kx.dynamicAttrs).
 */
import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { AdamW, SGD, Tiger, warmupLinear, type Optimizer } from '@kexue/optimizers';

import { maxRelError } from '../../core-cuda/test/helpers.js';
import { randomTensor } from './helpers.js';

function model(seed: number): Record<string, kx.Tensor> {
  return { w1: randomTensor([6, 10], seed), b1: randomTensor([10], seed + 1), w2: randomTensor([10, 2], seed + 2) };
}

/** One step of a small tanh MLP's squared error, then opt.step on its gradients; returns the loss. */
function trainStep(params: Record<string, kx.Tensor>, opt: Optimizer) {
  return (x: kx.Tensor, y: kx.Tensor): kx.Tensor => {
    const { value, grads } = kx.valueAndGrad((p: Record<string, kx.Tensor>) => {
      const h = kx.tanh(kx.add(kx.matmul(x, p.w1!), p.b1!));
      return kx.mean(kx.pow(kx.sub(kx.matmul(h, p.w2!), y), 2));
    }, params);
    opt.step(params, grads);
    kx.dispose(Object.values(grads));
    return value;
  };
}

describe('AdamW.step inside kx.compile', () => {
  const options = () => ({
    learningRate: 0.05,
    weightDecay: 0.01,
    schedule: warmupLinear({ warmupSteps: 3, totalSteps: 20 }),
    // two native calls a step: the biases without weight decay
    groups: [{ match: /^b/, weightDecay: 0 }],
  });

  it('traces once; each replay runs with its own learning rate and step, as the eager optimizer', () => {
    const eagerParams = model(1);
    const compiledParams = model(1);
    const eagerOpt = new AdamW(options());
    const compiledOpt = new AdamW(options());
    const eager = trainStep(eagerParams, eagerOpt);
    const step = kx.compile(trainStep(compiledParams, compiledOpt));
    const x = randomTensor([16, 6], 5);
    const y = randomTensor([16, 2], 6);
    for (let i = 0; i < 8; i++) {
      const e = kx.tidy(() => eager(x, y).item());
      const c = kx.tidy(() => step(x, y).toFloat32Array()[0]!);
      expect(Math.abs(c - e)).toBeLessThanOrEqual(1e-5 * Math.abs(e));
    }
    expect(step.stats).toEqual({ traces: 1, replays: 7 });
    expect(compiledOpt.iterations).toBe(8);
    for (const k of Object.keys(eagerParams)) expect(maxRelError(compiledParams[k]!, eagerParams[k]!), k).toBeLessThanOrEqual(1e-5);
    // the counters a replay advanced are the optimizer's own: its state equals the eager one's
    const [a, b] = [compiledOpt.state(), eagerOpt.state()];
    expect(a.meta).toEqual(b.meta);
    kx.dispose([x, y, eagerParams, compiledParams, a.tensors, b.tensors] as kx.TensorContainer);
  });

  it('an optimizer that cannot replay its steps (Tiger, SGD) refuses to be traced: E_ARG, nothing updated', () => {
    const x = randomTensor([4, 6], 7);
    const y = randomTensor([4, 2], 8);
    for (const opt of [new Tiger({ learningRate: 1e-3 }), new SGD({ learningRate: 0.1 })]) {
      const params = model(3);
      const before = params.w1!.toFloat32Array().slice();
      const step = kx.compile(trainStep(params, opt));
      expect(() => kx.tidy(() => step(x, y))).toThrow(/cannot run inside kx\.compile yet/);
      expect(params.w1!.toFloat32Array()).toEqual(before);
      expect(opt.iterations).toBe(0);
      kx.dispose(params);
    }
    kx.dispose([x, y]);
  });
});
