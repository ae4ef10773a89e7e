import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { AdamW, LION_V2_DEFAULTS, Lion, LossScaler, SGD, Tiger, loadOptimizerState, saveOptimizerState, type Optimizer } from '@kexue/optimizers';

import { StepVerdicts } from '../src/verdicts.js';
import { expectCode, randomTensor } from './helpers.js';

const shapes: Record<string, number[]> = { 'a.kernel': [5, 3], 'a.bias': [3], embeddings: [4, 6] };

function makeParams(seed = 1): Record<string, kx.Tensor> {
  return Object.fromEntries(Object.entries(shapes).map(([n, s], i) => [n, randomTensor(s, seed + i, 0.5)]));
}
function makeGrads(seed: number): Record<string, kx.Tensor> {
  return Object.fromEntries(Object.entries(shapes).map(([n, s], i) => [n, randomTensor(s, 100 * seed + i)]));
}
function values(ts: Record<string, kx.Tensor>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, Array.from(t.toFloat32Array())]));
}

const all: [string, () => Optimizer, number][] = [
  ['Tiger', () => new Tiger(), 1],
  ['Lion', () => new Lion(), 1],
  ['AdamW', () => new AdamW(), 2],
  ['SGD with momentum', () => new SGD({ momentum: 0.9 }), 1],
  ['SGD', () => new SGD(), 0],
];

describe('defaults', () => {
  it('are a frozen static of each optimizer (the reference\'s values), which its constructor uses', () => {
    expect(Tiger.defaults).toEqual({ learningRate: 1e-3, beta: 0.965, weightDecay: 0.01, gradAccumSteps: 1, shrinkRatio: 0.99 }); // tiger.py
    expect(Lion.defaults).toBe(LION_V2_DEFAULTS);
    expect(Lion.defaults).toEqual({ learningRate: 3e-4, beta1: 0.95, beta2: 0.98, weightDecay: 0 }); // bert4keras LionV2
    expect(AdamW.defaults).toEqual({ learningRate: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }); // torch.optim.AdamW
    expect(SGD.defaults).toEqual({ learningRate: 1e-3, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 }); // torch.optim.SGD
    const made: [Readonly<Record<string, number | boolean>>, Optimizer, (given: object) => Optimizer][] = [
      [Tiger.defaults, new Tiger(), (o) => new Tiger(o)],
      [Lion.defaults, new Lion(), (o) => new Lion(o)],
      [AdamW.defaults, new AdamW(), (o) => new AdamW(o)],
      [SGD.defaults, new SGD(), (o) => new SGD(o)],
    ];
    for (const [defaults, opt, make] of made) {
      expect(Object.isFrozen(defaults)).toBe(true);
      for (const [key, value] of Object.entries(defaults)) expect((opt as unknown as Record<string, unknown>)[key], `${opt.kind}.${key}`).toBe(value);
      // every default is an option, and nothing else is but the common ones (and Tiger's paramClass)
      make({ ...defaults }).dispose();
      expectCode(() => make({ ...defaults, shrink: 0.9 }), 'E_ARG');
      opt.dispose();
    }
    // typed as numbers and booleans, not the literals written
    let lr = Tiger.defaults.learningRate;
    lr = 2e-3;
    let nesterov = SGD.defaults.nesterov;
    nesterov = true;
    expect([lr, nesterov]).toEqual([2e-3, true]);
  });
});

describe('memory: float32 state tensors per parameter, through kx.memory()', () => {
  for (const [name, make, slots] of all) {
    it(`${name}: ${slots} per parameter, nothing else left behind`, () => {
      const params = makeParams();
      const opt = make();
      const before = kx.memory();
      const grads = makeGrads(1);
      const withGrads = kx.memory();
      opt.step(params, grads);
      const after = kx.memory();
      const elements = Object.values(shapes).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
      expect(after.storages - withGrads.storages).toBe(slots * Object.keys(shapes).length);
      expect(after.bytes - withGrads.bytes).toBe(slots * 4 * elements);
      expect(after.tensors - withGrads.tensors).toBe(slots * Object.keys(shapes).length);
      // Further steps allocate nothing that stays.
      opt.step(params, grads);
      expect(kx.memory().storages).toBe(after.storages);
      kx.dispose(grads);
      opt.dispose();
      expect(kx.memory().storages).toBe(before.storages);
      kx.dispose(params);
    });
  }
});

describe('state(), loadState(), zeroState()', () => {
  for (const [name, make] of all) {
    it(`${name}: resuming from a saved state continues exactly`, async () => {
      const p1 = makeParams();
      const a = make();
      for (let s = 0; s < 3; s++) kx.tidy(() => a.step(p1, makeGrads(s)));
      const dir = mkdtempSync(path.join(tmpdir(), 'kx-opt-'));
      const file = path.join(dir, 'opt.safetensors');
      await saveOptimizerState(file, a);
      const snapshot = values(p1);
      const p2 = Object.fromEntries(Object.entries(snapshot).map(([n, v]) => [n, kx.tensor(v, shapes[n])]));
      const b = make();
      loadOptimizerState(file, b);
      rmSync(dir, { recursive: true });
      expect(b.iterations).toBe(3);
      for (let s = 3; s < 6; s++) {
        kx.tidy(() => {
          const g = makeGrads(s);
          a.step(p1, g);
          b.step(p2, g);
        });
      }
      expect(values(p2)).toEqual(values(p1));
      // zeroState forgets everything: the next step is a first step again.
      b.zeroState();
      expect(b.iterations).toBe(0);
      expect(Object.keys(b.state().tensors)).toEqual([]);
      kx.dispose([p1, p2]);
      a.dispose();
      b.dispose();
    });
  }

  it('a state saved for other shapes is E_SHAPE; another optimizer or a bad slot is E_ARG', () => {
    const params = makeParams();
    const tiger = new Tiger();
    tiger.step(params, makeGrads(1));
    const s = tiger.state();
    const other = new Tiger();
    other.step({ 'a.kernel': kx.zeros([3, 5]) }, { 'a.kernel': kx.zeros([3, 5]) });
    expectCode(() => other.loadState(s), 'E_SHAPE');
    // Loaded into a fresh optimizer, the mismatch shows at the first step, before anything moves.
    const fresh = new Tiger();
    fresh.loadState(s);
    const wrong = { ...params, embeddings: kx.zeros([6, 4]) };
    const before = values(params);
    expectCode(() => fresh.step(wrong, { ...makeGrads(2), embeddings: kx.zeros([6, 4]) }), 'E_SHAPE');
    expect(values(params)).toEqual(before);
    expectCode(() => new Lion().loadState(s), 'E_ARG');
    expectCode(() => new AdamW().loadState({ tensors: s.tensors, meta: { ...s.meta, optimizer: 'adamw' } }), 'E_ARG');
    expectCode(() => new Tiger().loadState({ tensors: { 'a.kernel.v': s.tensors['a.kernel.m']! }, meta: s.meta }), 'E_ARG');
    kx.dispose([params, s.tensors]);
    tiger.dispose();
    other.dispose();
    fresh.dispose();
  });

  it('a file without optimizer metadata is E_FORMAT', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kx-opt-'));
    const file = path.join(dir, 'w.safetensors');
    const t = kx.zeros([2]);
    await kx.io.saveSafetensors(file, { 'w.m': t });
    expectCode(() => loadOptimizerState(file, new Tiger()), 'E_FORMAT');
    rmSync(dir, { recursive: true });
    t.dispose();
  });
});

describe('bad input', () => {
  it('gradients not matching the parameters: E_SHAPE, and nothing moves', () => {
    const params = makeParams();
    const before = values(params);
    const opt = new Tiger();
    const g = makeGrads(1);
    const { embeddings, ...missing } = g;
    expectCode(() => opt.step(params, missing), 'E_SHAPE');
    expectCode(() => opt.step(params, { ...g, extra: kx.zeros([1]) }), 'E_SHAPE');
    expectCode(() => opt.step(params, { ...g, 'a.bias': kx.zeros([4]) }), 'E_SHAPE');
    expectCode(() => opt.step(params, { ...g, 'a.bias': kx.zeros([3], { dtype: 'int32' }) }), 'E_DTYPE');
    expect(values(params)).toEqual(before);
    expect(opt.iterations).toBe(0);
    kx.dispose([params, g, embeddings]);
    opt.dispose();
  });

  it('unknown options and negative learning rates: E_ARG', () => {
    for (const make of [
      () => new Tiger({ learningRate: -1 }),
      () => new Lion({ learningRate: -1e-4 }),
      () => new AdamW({ learningRate: -0.1 }),
      () => new SGD({ learningRate: -0.1 }),
      () => new AdamW({ betas: [0.9, 0.99] } as never),
      () => new Lion({ beta: 0.9 } as never),
      () => new SGD({ nesterov: true }),
      () => new AdamW({ groups: [{ match: /x/, learningRate: -1 }] }),
      () => new AdamW({ groups: [{ match: /x/, lr: 1 } as never] }),
      () => new AdamW({ clipNorm: 0 }),
      () => new LossScaler({ growthInterval: 10 }),
    ]) {
      expectCode(make, 'E_ARG');
    }
    const opt = new SGD();
    const p = { w: kx.zeros([2]) };
    expectCode(() => opt.step(p, { w: kx.zeros([2]) }, { gradScale: -1 }), 'E_ARG');
    expectCode(() => opt.step(p, { w: kx.zeros([2]) }, { scale: 1 } as never), 'E_ARG');
    expectCode(() => new SGD({ schedule: () => -1 }).step(p, { w: kx.zeros([2]) }), 'E_ARG');
  });

  it('a step inside a gradient tape is E_ARG (it would mutate what the tape recorded)', () => {
    const p = kx.zeros([2, 3]);
    expectCode(() => kx.valueAndGrad(([w]) => {
      new Lion().step({ w: w! }, { w: w! });
      return kx.sum(w!);
    }, [p]), 'E_ARG');
    p.dispose();
  });
});

describe('StepVerdicts', () => {
  it('reads flags on the CPU at once, each tensor once, and frees them; booleans need no read', () => {
    const before = kx.memory().tensors;
    const f1 = kx.tensor([1, 0, 1], [3], { dtype: 'uint8' });
    const f2 = kx.tensor([0], [1], { dtype: 'uint8' });
    const applied: string[] = [];
    const v = new StepVerdicts(
      ['a', 'b', 'c', 'd', 'e', 'f'],
      [true, { flags: f1, index: 1 }, false, { flags: f1, index: 0 }, { flags: f2, index: 0 }, { flags: f1, index: 2 }],
      (name) => applied.push(name),
    );
    expect(v.settled).toBe(true);
    expect(v.skipped).toEqual(['b', 'c', 'e']);
    expect(applied).toEqual(['a', 'd', 'f']);
    expect(kx.memory().tensors).toBe(before);
    v.settle(); // nothing left to read
    expect(applied).toEqual(['a', 'd', 'f']);
  });
});

describe('clipping, parameter groups, schedules', () => {
  it('clipNorm scales by maxNorm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_', () => {
    const g = { w: kx.tensor([3, 4], [2]) };
    const p = { w: kx.tensor([1, 1], [2]) };
    const opt = new SGD({ learningRate: 1, clipNorm: 1 });
    const r = opt.step(p, g);
    expect(r.gradNorm).toBe(5);
    expect(r.clipped).toBe(true);
    const c = 1 / (5 + 1e-6);
    expect(Array.from(p.w.toFloat32Array())).toEqual(Array.from(Float32Array.from([1 - 3 * c, 1 - 4 * c])));
    const r2 = new SGD({ learningRate: 1, clipNorm: 10 }).step(p, g);
    expect(r2.clipped).toBe(false);
    kx.dispose([g, p]);
  });

  it('groups set their own learning rate and weight decay; schedules multiply the learning rate', () => {
    const p = { 'enc.w': kx.tensor([1, 1], [2]), 'dec.w': kx.tensor([1, 1], [2]), other: kx.tensor([1, 1], [2]) };
    const g = { 'enc.w': kx.tensor([1, 1], [2]), 'dec.w': kx.tensor([1, 1], [2]), other: kx.tensor([1, 1], [2]) };
    const opt = new SGD({
      learningRate: 0.1,
      schedule: (t) => (t === 0 ? 0.5 : 1),
      groups: [{ match: /^enc\./, learningRate: 0.2 }, { match: ['dec.w'], weightDecay: 1 }],
    });
    opt.step(p, g);
    const f = (x: number): number => Math.fround(x);
    expect(p['enc.w'].toFloat32Array()[0]).toBe(f(1 - 0.2 * 0.5));
    expect(p['dec.w'].toFloat32Array()[0]).toBe(f(1 - 0.1 * 0.5 * 2));
    expect(p.other.toFloat32Array()[0]).toBe(f(1 - 0.1 * 0.5));
    kx.dispose([p, g]);
  });
});

describe('LossScaler', () => {
  it('static: the loss is multiplied and the gradients divided back inside the update', () => {
    const scaler = new LossScaler({ scale: 1000 });
    const p1 = { w: kx.tensor([1, 2], [2]) };
    const p2 = { w: kx.tensor([1, 2], [2]) };
    const x = kx.tensor([0.5, -0.25], [2]);
    const a = new AdamW({ learningRate: 0.1 });
    const b = new AdamW({ learningRate: 0.1 });
    for (let s = 0; s < 3; s++) {
      const r1 = kx.valueAndGrad((p) => scaler.scaleLoss(kx.sum(kx.mul(p.w!, x))), p1);
      expect(r1.value.item()).toBeCloseTo(1000 * (0.5 * p1.w.toFloat32Array()[0]! - 0.25 * p1.w.toFloat32Array()[1]!), 2);
      scaler.step(a, p1, r1.grads);
      const r2 = kx.valueAndGrad((p) => kx.sum(kx.mul(p.w!, x)), p2);
      b.step(p2, r2.grads);
      kx.dispose([r1, r2]);
    }
    const d = Array.from(p1.w.toFloat32Array()).map((v, i) => Math.abs(v - p2.w.toFloat32Array()[i]!));
    expect(Math.max(...d)).toBeLessThan(1e-6);
    kx.dispose([p1, p2, x]);
  });

  it('dynamic: skips non-finite steps and backs off; grows after growthInterval good steps', () => {
    const scaler = new LossScaler({ dynamic: true, scale: 1024, growthInterval: 2 });
    const opt = new Tiger({ learningRate: 0.1 });
    const p = { w: kx.tensor([1, -1], [2]) };
    const good = { w: kx.tensor([1024, -2048], [2]) };
    const bad = { w: kx.tensor([Number.POSITIVE_INFINITY, 1], [2]) };
    const r0 = scaler.step(opt, p, bad);
    expect(r0.applied).toBe(false);
    expect(scaler.scale).toBe(512);
    expect(opt.iterations).toBe(0);
    expect(Array.from(p.w.toFloat32Array())).toEqual([1, -1]);
    expect(scaler.step(opt, p, good).applied).toBe(true);
    expect(scaler.scale).toBe(512);
    scaler.step(opt, p, good);
    expect(scaler.scale).toBe(1024);
    expect(opt.iterations).toBe(2);
    expect(scaler.state()).toEqual({ scale: 1024, goodSteps: 0 });
    const again = new LossScaler({ dynamic: true });
    again.loadState(scaler.state());
    expect(again.scale).toBe(1024);
    kx.dispose([p, good, bad]);
    opt.dispose();
  });
});
