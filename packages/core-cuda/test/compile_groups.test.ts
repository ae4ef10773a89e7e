/**
 * kx.compile, the second slice of FUSION.md: multi-output groups and sibling merging (rule 5), and
 * reductions with elementwise prologues and epilogues (rules 2 and 3). Plans are asserted (groups,
 * outputs, reductions) and results compared with the eager run: fused reductions sum in the eager
 * order of a row the eager kernel does not split (equal bits when no multiply-add is contracted),
 * with a partition fixed by the shape (equal bits at every thread count).
 */
import { afterEach, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import type { CompiledPlan } from '../src/index.js';
import { ADAMW, adamwPlain as adamw, addonCalls, broadcastShape, mask, randomGraph, uniform } from './compile_helpers.js';
import { maxRelError } from './helpers.js';
import { Rng } from './parity_cases.js';

afterEach(() => kx.profiler.reset());

/** The groups of a plan as [fused ops (broadcasts aside), outputs, reduction op or '-']. */
function groupsOf(plan: CompiledPlan): [number, number, string][] {
  return plan.groups.map((g) => [g.nodes.filter((id) => plan.nodes.find((n) => n.id === id)!.op !== 'broadcast_to').length, g.outputs.length, g.reduce?.op ?? '-']);
}

/** Traces fn on args, replays it once more, and returns the replay's results with the plan. */
function replayed<A extends kx.Tensor[]>(fn: (...args: A) => kx.Tensor[], args: A): { outs: kx.Tensor[]; plan: CompiledPlan } {
  const compiled = kx.compile(fn);
  kx.dispose(compiled(...args));
  return { outs: compiled(...args), plan: compiled.plan(...args)! };
}

// ---- AdamW in plain ops ---------------------------------------------------------------------------

const { beta1, beta2 } = ADAMW;

describe('kx.compile: AdamW of θ, m, v in plain ops', () => {
  it('is one fused group with three outputs, one addon call per step, within 1e-6 of eager over 6 steps', () => {
    const rng = new Rng(21);
    const n = 5000;
    const init = () => [uniform(new Rng(22), [n]), kx.zeros([n]), kx.zeros([n])];
    let [th, m, v] = init() as [kx.Tensor, kx.Tensor, kx.Tensor];
    let [eth, em, ev] = init() as [kx.Tensor, kx.Tensor, kx.Tensor];
    const compiled = kx.compile(adamw);
    for (let step = 1; step <= 6; step++) {
      const g = uniform(rng, [n]);
      const lr = kx.tensor([1e-2 * step], []);
      const bc1 = kx.tensor([1 - beta1 ** step], []);
      const bc2 = kx.tensor([1 - beta2 ** step], []);
      const next = step === 1 ? compiled(th, m, v, g, lr, bc1, bc2) : kx.tidy(() => {
        let outs: kx.Tensor[] = [];
        const calls = addonCalls(() => void (outs = compiled(th, m, v, g, lr, bc1, bc2)));
        expect([...calls]).toEqual([['programRun', 1]]);
        return outs;
      });
      const eager = adamw(eth, em, ev, g, lr, bc1, bc2);
      kx.dispose([th, m, v, eth, em, ev, g, lr, bc1, bc2]);
      [th, m, v] = next as [kx.Tensor, kx.Tensor, kx.Tensor];
      [eth, em, ev] = eager as [kx.Tensor, kx.Tensor, kx.Tensor];
      // the multiply-adds round once where eager rounds twice
      expect(maxRelError(th, eth), `step ${step} θ`).toBeLessThanOrEqual(1e-6);
      expect(maxRelError(m, em), `step ${step} m`).toBeLessThanOrEqual(1e-6);
      expect(maxRelError(v, ev), `step ${step} v`).toBeLessThanOrEqual(1e-6);
    }
    const args = [th, m, v, kx.zeros([n]), kx.tensor([1], []), kx.tensor([1], []), kx.tensor([1], [])] as const;
    const plan = compiled.plan(...args)!;
    expect(compiled.stats).toEqual({ traces: 1, replays: 5 });
    expect(plan.steps).toBe(1);
    expect(groupsOf(plan)).toEqual([[16, 3, '-']]);
    expect(plan.groups[0]!.inputs.length).toBe(7);
    kx.dispose([th, m, v, eth, em, ev, ...args.slice(3)]);
  });
});

// ---- multi-output groups and sibling merging ------------------------------------------------------

describe('kx.compile: multi-output groups and sibling merging', () => {
  it('a value returned and read later is an extra output of the group, not materialised apart', () => {
    const rng = new Rng(31);
    const [x, a, b] = [uniform(rng, [40, 50]), uniform(rng, [50]), uniform(rng, [40, 50])];
    const f = (x: kx.Tensor, a: kx.Tensor, b: kx.Tensor) => {
      const h = kx.tanh(kx.add(kx.mul(x, a), b));
      return [h, kx.sub(kx.mul(h, h), x)];
    };
    const eager = f(x, a, b);
    const { outs, plan } = replayed(f, [x, a, b]);
    expect(groupsOf(plan)).toEqual([[5, 2, '-']]);
    outs.forEach((o, i) => expect(maxRelError(o, eager[i]!)).toBeLessThanOrEqual(1e-6));
    kx.dispose([x, a, b, ...eager, ...outs]);
  });

  it('a value read by an op outside is an output when that op runs after the group, else materialised', () => {
    const rng = new Rng(32);
    const [x, w] = [uniform(rng, [16, 24]), uniform(rng, [24, 8])];
    const after = (x: kx.Tensor, w: kx.Tensor) => {
      const u = kx.add(kx.mul(kx.exp(kx.tanh(x)), 2), 1);
      const y = kx.sub(kx.mul(u, x), kx.sigmoid(x));
      return [y, kx.matmul(u, w)];
    };
    const before = (x: kx.Tensor, w: kx.Tensor) => {
      const u = kx.add(kx.mul(kx.exp(kx.tanh(x)), 2), 1);
      const z = kx.matmul(u, w); // reads u before y's chain ends: u's chain and y's are groups apart
      const y = kx.sub(kx.mul(u, x), kx.sigmoid(x));
      return [y, z];
    };
    for (const [f, expected] of [[after, [[7, 2, '-']]], [before, [[4, 1, '-'], [3, 1, '-']]]] as const) {
      const eager = f(x, w);
      const { outs, plan } = replayed(f, [x, w]);
      expect(groupsOf(plan), f.name).toEqual(expected);
      outs.forEach((o, i) => expect(maxRelError(o, eager[i]!)).toBeLessThanOrEqual(1e-6));
      kx.dispose([...eager, ...outs]);
    }
    kx.dispose([x, w]);
  });

  it('merges independent sibling groups over one shape that share an input; not across a dependency or shapes', () => {
    const rng = new Rng(33);
    const [x, y, z, r] = [uniform(rng, [30, 20]), uniform(rng, [30, 20]), uniform(rng, [30, 20]), uniform(rng, [20])];
    const siblings = (x: kx.Tensor, y: kx.Tensor, z: kx.Tensor) => [
      kx.add(kx.mul(kx.exp(x), 2), y),
      kx.sub(kx.mul(kx.tanh(x), 3), z),
    ];
    // b reads a through a reduction (an op outside both): they cannot run as one
    const dependent = (x: kx.Tensor, y: kx.Tensor, z: kx.Tensor) => {
      const a = kx.add(kx.mul(kx.exp(x), 2), y);
      return [a, kx.sub(kx.mul(kx.tanh(x), kx.max(a, 0)), z)];
    };
    // no shared input
    const apart = (x: kx.Tensor, y: kx.Tensor, z: kx.Tensor) => [kx.add(kx.mul(kx.exp(x), 2), x), kx.sub(kx.mul(kx.tanh(y), 3), z)];
    // another shape
    const shapes = (x: kx.Tensor, y: kx.Tensor, z: kx.Tensor) => [kx.add(kx.mul(kx.exp(x), 2), y), kx.sub(kx.mul(kx.tanh(r), 3), kx.sum(z, 0))];
    const cases: [typeof siblings, [number, number, string][]][] = [
      [siblings, [[6, 2, '-']]],
      [dependent, [[3, 1, '-'], [3, 1, '-']]],
      [apart, [[3, 1, '-'], [3, 1, '-']]],
      [shapes, [[3, 1, '-'], [3, 1, '-']]],
    ];
    for (const [f, expected] of cases) {
      const eager = f(x, y, z);
      const { outs, plan } = replayed(f, [x, y, z]);
      expect(groupsOf(plan), f.name).toEqual(expected);
      outs.forEach((o, i) => expect(maxRelError(o, eager[i]!)).toBeLessThanOrEqual(1e-6));
      kx.dispose([...eager, ...outs]);
    }
    kx.dispose([x, y, z, r]);
  });

  it('nothing moves across an in-place update: siblings on both sides of one stay apart', () => {
    const rng = new Rng(34);
    const [x, y, p, dp] = [uniform(rng, [8, 9]), uniform(rng, [8, 9]), uniform(rng, [8, 9]), uniform(rng, [8, 9])];
    const f = (x: kx.Tensor, y: kx.Tensor) => {
      const a = kx.add(kx.mul(kx.exp(x), 2), y);
      kx.sgdUpdate(p, dp, null, { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, first: true });
      return [a, kx.sub(kx.mul(kx.tanh(x), p), y)];
    };
    const compiled = kx.compile(f);
    kx.dispose(compiled(x, y));
    expect(groupsOf(compiled.plan(x, y)!)).toEqual([[3, 1, '-'], [3, 1, '-']]);
    kx.dispose([x, y, p, dp]);
  });

  it('keeps at most 8 outputs per group', () => {
    const rng = new Rng(35);
    const x = uniform(rng, [64]);
    const f = (x: kx.Tensor) => {
      const outs: kx.Tensor[] = [];
      let h = x;
      for (let i = 0; i < 12; i++) outs.push((h = kx.tanh(kx.add(kx.mul(h, 0.9), 0.1))));
      return outs;
    };
    const eager = f(x);
    const { outs, plan } = replayed(f, [x]);
    for (const g of plan.groups) expect(g.outputs.length).toBeLessThanOrEqual(8);
    expect(plan.groups.reduce((k, g) => k + g.outputs.length, 0)).toBe(12);
    outs.forEach((o, i) => expect(maxRelError(o, eager[i]!)).toBeLessThanOrEqual(1e-6));
    kx.dispose([x, ...eager, ...outs]);
  });
});

// ---- reductions -----------------------------------------------------------------------------------

describe('kx.compile: reductions with elementwise prologues and epilogues', () => {
  const sumSquares = (g: kx.Tensor) => [kx.sum(kx.mul(g, g))];
  const norm = (g: kx.Tensor) => [kx.sqrt(kx.sum(kx.mul(g, g)))];
  const mse = (a: kx.Tensor, b: kx.Tensor) => [kx.mean(kx.pow(kx.sub(a, b), 2), -1)];
  const rowMax = (a: kx.Tensor, b: kx.Tensor) => [kx.add(kx.log(kx.max(kx.mul(kx.exp(a), b), -1, true)), 1)];

  it('sum(g·g), sqrt(sum(g·g)), mean((a−b)²) over rows and max with an epilogue: one group each, the eager bits', () => {
    const rng = new Rng(41);
    // rows shorter than 65,536 elements: the eager kernel does not split them, so the order is the same
    const [a, b] = [uniform(rng, [70, 300]), uniform(rng, [70, 300], 0.5, 1)];
    const cases: [string, (...xs: kx.Tensor[]) => kx.Tensor[], kx.Tensor[], [number, number, string][]][] = [
      ['sum(g·g)', sumSquares, [a], [[2, 1, 'sum']]],
      ['sqrt(sum(g·g))', norm, [a], [[3, 1, 'sum']]],
      ['mean((a−b)²)', mse, [a, b], [[3, 1, 'mean']]],
      ['log(max(exp(a)·b)) + 1', rowMax, [a, b], [[5, 1, 'max']]],
    ];
    for (const [what, f, args, expected] of cases) {
      const eager = f(...args);
      const { outs, plan } = replayed(f, args);
      expect(groupsOf(plan), what).toEqual(expected);
      expect(plan.steps, what).toBe(1);
      expect(outs[0]!.shape, what).toEqual(eager[0]!.shape);
      expect(outs[0]!.toFloat32Array(), what).toEqual(eager[0]!.toFloat32Array());
      kx.dispose([...eager, ...outs]);
    }
    kx.dispose([a, b]);
  });

  it('long rows and whole tensors (split into chunks): within 1e-6 of eager and of a float64 sum', () => {
    const rng = new Rng(42);
    for (const shape of [[3, 100_000], [1 << 20], [2, 3, 40_000]]) {
      const [a, b] = [uniform(rng, shape), uniform(rng, shape)];
      for (const axes of [undefined, -1]) {
        const f = (a: kx.Tensor, b: kx.Tensor) => [kx.sum(kx.sub(kx.mul(a, b), kx.mul(b, 0.25)), axes)];
        const eager = f(a, b);
        const { outs, plan } = replayed(f, [a, b]);
        expect(groupsOf(plan)).toEqual([[4, 1, 'sum']]);
        // the products are contracted into multiply-adds: terms round once, not twice
        expect(maxRelError(outs[0]!, eager[0]!)).toBeLessThanOrEqual(1e-6);
        const [av, bv] = [a.toFloat32Array(), b.toFloat32Array()];
        const rows = axes === undefined ? 1 : shape.slice(0, -1).reduce((x, y) => x * y, 1);
        const len = av.length / rows;
        const exact = Array.from({ length: rows }, (_, r) => {
          let s = 0;
          for (let i = r * len; i < (r + 1) * len; i++) s += av[i]! * bv[i]! - bv[i]! * 0.25;
          return s;
        });
        expect(maxRelError(outs[0]!, exact)).toBeLessThanOrEqual(1e-5);
        kx.dispose([...eager, ...outs]);
      }
      kx.dispose([a, b]);
    }
  });

  it('keepDims, epilogues reading other tensors, prologue values returned (two outputs of two shapes)', () => {
    const rng = new Rng(43);
    const [x, y, bias] = [uniform(rng, [12, 7, 33]), uniform(rng, [12, 7, 33]), uniform(rng, [12, 7, 1])];
    const f = (x: kx.Tensor, y: kx.Tensor, bias: kx.Tensor) => {
      const d = kx.sub(x, y);
      const s = kx.sum(kx.mul(d, d), -1, true);
      return [kx.add(kx.mul(s, 0.5), bias), d];
    };
    const eager = f(x, y, bias);
    const { outs, plan } = replayed(f, [x, y, bias]);
    expect(groupsOf(plan)).toEqual([[5, 2, 'sum']]);
    expect(plan.groups[0]!.epilogue.length).toBe(2);
    expect(outs.map((o) => o.shape)).toEqual([[12, 7, 1], [12, 7, 33]]);
    outs.forEach((o, i) => expect(maxRelError(o, eager[i]!)).toBeLessThanOrEqual(1e-6));
    kx.dispose([x, y, bias, ...eager, ...outs]);
  });

  it('reductions over other than the innermost axes stay eager ops; empty rows sum to 0, mean to NaN', () => {
    const rng = new Rng(44);
    const x = uniform(rng, [20, 30]);
    const outer = (x: kx.Tensor) => [kx.sum(kx.mul(kx.exp(x), x), 0)];
    const { outs, plan } = replayed(outer, [x]);
    expect(plan.groups).toEqual([]);
    expect(outs[0]!.toFloat32Array()).toEqual(outer(x)[0]!.toFloat32Array());
    const empty = kx.zeros([4, 0]);
    const f = (e: kx.Tensor) => [kx.sum(kx.mul(kx.exp(e), e), -1), kx.mean(kx.mul(kx.exp(e), e), -1)];
    const r = replayed(f, [empty]);
    expect(groupsOf(r.plan)).toEqual([[3, 1, 'sum'], [3, 1, 'mean']]);
    expect(Array.from(r.outs[0]!.toFloat32Array())).toEqual([0, 0, 0, 0]);
    expect(Array.from(r.outs[1]!.toFloat32Array()).every(Number.isNaN)).toBe(true);
    kx.dispose([x, empty, ...outs, ...r.outs]);
  });

  it('float16 and bfloat16: widened inside, the reduction in float32, rounded once on store', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const rng = new Rng(45);
      const [a, b] = [uniform(rng, [40, 500], -1, 1, dtype), uniform(rng, [40, 500], 0.5, 1, dtype)];
      for (const f of [sumSquares, norm, mse, rowMax] as ((...xs: kx.Tensor[]) => kx.Tensor[])[]) {
        const args = f.length === 1 ? [a] : [a, b];
        const eager = f(...args);
        const { outs, plan } = replayed(f, args);
        expect(plan.groups.length).toBe(1);
        expect(outs[0]!.dtype).toBe(dtype);
        // eager rounds the prologue's values to the half type, the group does not
        expect(maxRelError(outs[0]!, eager[0]!), `${dtype} ${f.name}`).toBeLessThanOrEqual(dtype === 'float16' ? 4 * 2 ** -10 : 4 * 2 ** -7);
        kx.dispose([...eager, ...outs]);
      }
      kx.dispose([a, b]);
    }
  });

  it('the bits do not depend on the number of threads', () => {
    const threads = kx.buildInfo().threads;
    const rng = new Rng(46);
    const shapes = [[5000, 37], [3, 200_000], [1 << 20], [64, 700]];
    const inputs = shapes.map((s) => [uniform(rng, s), uniform(rng, s)] as const);
    const f = (a: kx.Tensor, b: kx.Tensor) => [kx.sum(kx.add(kx.mul(a, b), a), -1), kx.max(kx.mul(kx.exp(a), b)), kx.mean(kx.mul(a, b))];
    const compiled = kx.compile(f);
    const runs: Float32Array[][] = [];
    try {
      for (const n of [1, 2, 3, 5]) {
        kx.setNumThreads(n);
        runs.push(
          inputs.flatMap(([a, b]) =>
            kx.tidy(() => {
              compiled(a, b);
              return compiled(a, b).map((t) => t.toFloat32Array());
            }),
          ),
        );
      }
    } finally {
      kx.setNumThreads(threads);
    }
    for (const [a, b] of inputs) expect(groupsOf(compiled.plan(a, b)!)).toEqual([[3, 1, 'sum'], [3, 1, 'max'], [2, 1, 'mean']]);
    for (const run of runs.slice(1)) expect(run).toEqual(runs[0]);
    kx.dispose(inputs.flat());
  });
});

// ---- fuzz: random graphs ending in a reduction -------------------------------------------------------

/**
 * randomGraph's elementwise values, its first (broadcast to the full shape) reduced by sum, mean or max over
 * every axis, the last one or (rarely, staying eager) the first, kept as a size-1 axis or not, then
 * an epilogue of up to two ops; the result is the reduction's, then randomGraph's values (extra
 * outputs of the group where it can write them).
 */
function reductionGraph(seed: number, shape: number[], floats: number, masks: number) {
  const body = randomGraph(seed, shape, floats, masks);
  const rng = new Rng(seed + 7777);
  const op = (['sum', 'mean', 'max'] as const)[rng.int(0, 3)]!;
  const k = rng.uniform();
  const axes = k < 0.45 ? undefined : k < 0.9 || shape.length === 1 ? -1 : 0;
  const keepDims = rng.uniform() < 0.5;
  const epilogue = Array.from({ length: rng.int(0, 3) }, () => rng.int(0, 3));
  const reduce = (t: kx.Tensor) => kx[op](t, axes, keepDims);
  const graph = (...xs: kx.Tensor[]): kx.Tensor[] => {
    const values = body(...xs);
    let y = reduce(kx.broadcastTo(values[0]!, shape));
    for (const e of epilogue) y = e === 0 ? kx.mul(y, 0.75) : e === 1 ? kx.add(y, 0.5) : kx.tanh(y);
    return [y, ...values.slice(1)];
  };
  return { graph, body, reduce };
}

describe('kx.compile: fuzz of random graphs with reductions and multi-output groups (fixed seeds)', () => {
  it('float32: 250 graphs, compiled = eager within 1e-5 of the reduced magnitudes', () => {
    let reductions = 0;
    let multi = 0;
    const graphs = 250;
    for (let seed = 0; seed < graphs; seed++) {
      const rng = new Rng(5000 + seed);
      const rank = rng.int(1, 4);
      const shape = Array.from({ length: rank }, () => rng.int(1, rank === 1 ? 5000 : 60));
      const floats = rng.int(1, 5);
      const masks = rng.int(0, 3);
      const xs = [
        ...Array.from({ length: floats }, () => uniform(rng, broadcastShape(rng, shape), -1.5, 1.5)),
        ...Array.from({ length: masks }, () => mask(rng, broadcastShape(rng, shape))),
      ];
      xs[0] = kx.tidy(() => kx.broadcastTo(kx.add(xs[0]!, uniform(rng, shape, -1, 1)), shape));
      const { graph, body, reduce } = reductionGraph(seed, shape, floats, masks);
      kx.tidy(() => {
        const eager = graph(...xs);
        // what a reduction of |terms| gives bounds the rounding of the terms' sum
        const t = kx.broadcastTo(body(...xs)[0]!, shape);
        const scale = reduce(kx.sqrt(kx.mul(t, t))).toFloat32Array().reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const compiled = kx.compile(graph);
        compiled(...xs);
        const outs = compiled(...xs);
        const plan = compiled.plan(...xs)!;
        reductions += plan.groups.filter((g) => g.reduce).length;
        multi += plan.groups.filter((g) => g.outputs.length > 1).length;
        eager.forEach((e, i) => {
          expect(outs[i]!.shape, `graph ${seed} output ${i} shape`).toEqual(e.shape);
          const ev = e.toFloat32Array();
          const ov = outs[i]!.toFloat32Array();
          const top = ev.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          let err = 0;
          ev.forEach((v, j) => (err = Number.isNaN(v) && Number.isNaN(ov[j]!) ? err : Math.max(err, Math.abs(ov[j]! - v))));
          expect(err, `graph ${seed} output ${i}`).toBeLessThanOrEqual(1e-5 * (top + (i === 0 ? scale : 0)));
        });
      });
      kx.dispose(xs);
    }
    expect(reductions, 'graphs with fused reductions').toBeGreaterThan(graphs / 3);
    expect(multi, 'multi-output groups').toBeGreaterThan(graphs / 10);
  });
});
