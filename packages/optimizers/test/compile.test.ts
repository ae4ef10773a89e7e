/**
 * Optimizer steps inside kx.compile: a compiled training step traces once and replays with each
 * step's own numbers (learning rate from the schedule, AdamW's bias-correction step, SGD's first
 * step, Tiger's accumulation micro-steps), which the optimizer recomputes on the host before every
 * replay (kx.dynamicAttrs); Tiger's guard flags come back from each replay (kx.replayOutput), and
 * clipping's factor is computed on the device.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { AdamW, Lion, SGD, Tiger, warmupLinear, type Optimizer, type StepResult } from '@kexue/optimizers';

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
});

/** Runs `steps` steps eagerly and compiled from the same start; returns both sides' losses, params and optimizers. */
function compareSteps(make: () => Optimizer, batches: readonly (readonly [kx.Tensor, kx.Tensor])[]) {
  const eagerParams = model(1);
  const compiledParams = model(1);
  const eagerOpt = make();
  const compiledOpt = make();
  const eager = trainStep(eagerParams, eagerOpt);
  const step = kx.compile(trainStep(compiledParams, compiledOpt));
  const losses = batches.map(([x, y]) => [kx.tidy(() => eager(x, y).item()), kx.tidy(() => step(x, y).toFloat32Array()[0]!)] as const);
  return { eagerParams, compiledParams, eagerOpt, compiledOpt, step, losses };
}

function batches(n: number, seed: number, nanAt = -1): (readonly [kx.Tensor, kx.Tensor])[] {
  return Array.from({ length: n }, (_, i) => {
    const x = randomTensor([16, 6], seed + 2 * i);
    // a non-finite input makes every gradient of the step non-finite
    return [i === nanAt ? kx.tidy(() => kx.mul(x, Number.NaN)) : x, randomTensor([16, 2], seed + 2 * i + 1)] as const;
  });
}

describe('Tiger, Lion and SGD steps inside kx.compile', () => {
  const cases: [string, () => Optimizer][] = [
    ['Tiger with gradient accumulation (k = 3) and a schedule', () => new Tiger({ learningRate: 0.01, gradAccumSteps: 3, schedule: warmupLinear({ warmupSteps: 4, totalSteps: 30 }) })],
    ['Lion with parameter groups', () => new Lion({ learningRate: 0.01, weightDecay: 0.1, groups: [{ match: /^b/, weightDecay: 0 }] })],
    ['SGD with Nesterov momentum (its first step differs)', () => new SGD({ learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
  ];
  for (const [name, make] of cases) {
    it(`${name}: traces once, then equals the eager optimizer step after step (parameters, state, counters)`, () => {
      const data = batches(9, 20);
      const { eagerParams, compiledParams, eagerOpt, compiledOpt, step, losses } = compareSteps(make, data);
      for (const [e, c] of losses) expect(Math.abs(c - e)).toBeLessThanOrEqual(1e-5 * Math.abs(e));
      expect(step.stats).toEqual({ traces: 1, replays: 8 });
      for (const k of Object.keys(eagerParams)) expect(maxRelError(compiledParams[k]!, eagerParams[k]!), k).toBeLessThanOrEqual(1e-5);
      const [a, b] = [compiledOpt.state(), eagerOpt.state()];
      expect(a.meta).toEqual(b.meta);
      for (const k of Object.keys(b.tensors)) expect(maxRelError(a.tensors[k]!, b.tensors[k]!), k).toBeLessThanOrEqual(1e-5);
      kx.dispose([data, eagerParams, compiledParams, a.tensors, b.tensors] as kx.TensorContainer);
    });
  }

  it("Tiger's non-finite guard acts at the replay it happens in: the same shrink, kept momentum and skipped counts as eager", () => {
    const data = batches(6, 40, 3);
    const { eagerParams, compiledParams, eagerOpt, compiledOpt, step, losses } = compareSteps(() => new Tiger({ learningRate: 0.01 }), data);
    expect(Number.isNaN(losses[3]![0]) && Number.isNaN(losses[3]![1])).toBe(true);
    expect(step.stats.replays).toBe(5);
    for (const k of Object.keys(eagerParams)) expect(maxRelError(compiledParams[k]!, eagerParams[k]!), k).toBeLessThanOrEqual(1e-5);
    // paramSteps count applied updates only: step 3's were skipped on both sides
    const [a, b] = [compiledOpt.state(), eagerOpt.state()];
    expect(a.meta).toEqual(b.meta);
    expect(b.meta.paramSteps.w1).toBe(5);
    kx.dispose([data, eagerParams, compiledParams, a.tensors, b.tensors] as kx.TensorContainer);
  });
});

describe('global-norm clipping inside kx.compile', () => {
  it('clips on the device with the eager rule: the same steps as eager, clipped or not', () => {
    // a large learning rate and clipNorm between the gradients' norms: some steps clip, some do not
    const data = batches(8, 60);
    const { eagerParams, compiledParams, step, losses } = compareSteps(() => new AdamW({ learningRate: 0.05, clipNorm: 0.5 }), data);
    for (const [e, c] of losses) expect(Math.abs(c - e)).toBeLessThanOrEqual(1e-5 * Math.abs(e));
    expect(step.stats).toEqual({ traces: 1, replays: 7 });
    for (const k of Object.keys(eagerParams)) expect(maxRelError(compiledParams[k]!, eagerParams[k]!), k).toBeLessThanOrEqual(1e-5);
    kx.dispose([data, eagerParams, compiledParams] as kx.TensorContainer);
  });

  it('a gradNorm given as a tensor is used on the device; as a number it is E_ARG inside kx.compile', () => {
    const params = model(5);
    const [[x, y]] = batches(1, 80);
    const opt = new SGD({ learningRate: 0.1, clipNorm: 1e-3 });
    let last: StepResult | null = null;
    const withNorm = (norm: (grads: kx.Tensor[]) => number | kx.Tensor) => (xt: kx.Tensor, yt: kx.Tensor): kx.Tensor => {
      const { value, grads } = kx.valueAndGrad((p: Record<string, kx.Tensor>) => kx.mean(kx.pow(kx.sub(kx.matmul(kx.tanh(kx.add(kx.matmul(xt, p.w1!), p.b1!)), p.w2!), yt), 2)), params);
      last = opt.step(params, grads, { gradNorm: norm(Object.values(grads)) });
      kx.dispose(Object.values(grads));
      return value;
    };
    const before = params.w1!.toFloat32Array().slice();
    const asNumber = kx.compile(withNorm(() => 1));
    expect(() => kx.tidy(() => void asNumber(x!, y!))).toThrow(/gradNorm is a number/);
    expect(params.w1!.toFloat32Array()).toEqual(before);
    // eagerly, a tensor norm is read: the result reports it
    kx.tidy(() => void withNorm((g) => kx.globalNormTensor(g))(x!, y!));
    expect(last).toMatchObject({ clipped: true });
    expect(last!.gradNorm).toBeGreaterThan(0);
    const compiled = kx.compile(withNorm((g) => kx.globalNormTensor(g)));
    kx.tidy(() => void compiled(x!, y!));
    expect(last).toMatchObject({ gradNorm: null, clipped: false });
    kx.dispose([params, x!, y!] as kx.TensorContainer);
  });
});
