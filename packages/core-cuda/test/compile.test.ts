/**
 * kx.compile: tracing by running, native replay, elementwise fusion on the CPU (FUSION.md). Compiled
 * results are compared with the eager run of the same function: equal bits without fusion (the
 * replay runs the same kernels), and within rounding with it (multiply-adds round once).
 */

import { afterEach, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { fromNativeError } from '../src/errors.js';
import { native } from '../src/native.js';
import { addonCalls, broadcastShape, mask, maxElementRelError, randomGraph, uniform } from './compile_helpers.js';
import { caseReport, cpuFlags, expectCode, maxRelError } from './helpers.js';
import { Rng } from './parity_cases.js';

afterEach(() => kx.profiler.reset());

// E1 of FUSION.md: a residual add of a masked, biased, scaled input.
const e1 = (res: kx.Tensor, m: kx.Tensor, x: kx.Tensor, bias: kx.Tensor, s: number) => kx.add(res, kx.mul(kx.mul(m, kx.add(x, bias)), s));

describe('kx.compile: E1 = res + mask * (x + bias) * s', () => {
  it('is one fused group, replayed in one addon call, within 1e-6 relative of eager', () => {
    const rng = new Rng(1);
    // positive terms (no cancellation): the multiply-add's single rounding stays within 1e-6 relative
    const [N, D] = [300, 1000];
    const res = uniform(rng, [N, D], 0.5, 1);
    const m = kx.tensor(Float32Array.from({ length: N * D }, () => (rng.uniform() < 0.5 ? 1 : 0)), [N, D]);
    const x = uniform(rng, [N, D], 0, 1);
    const bias = uniform(rng, [D], 0, 1);
    const compiled = kx.compile(e1);
    const eager = e1(res, m, x, bias, 0.3).toFloat32Array();
    const traced = compiled(res, m, x, bias, 0.3);
    expect(traced.toFloat32Array()).toEqual(eager); // the traced call is the eager run
    const plan = compiled.plan(res, m, x, bias, 0.3)!;
    expect(plan.groups.length).toBe(1);
    expect(plan.groups[0]!.nodes.length).toBe(4);
    expect(plan.groups[0]!.inputs.length).toBe(4);
    expect(plan.steps).toBe(1);
    expect(plan.nativeCallsPerReplay).toBe(1);
    // one multiply-add superinstruction: (mask · (x + bias)) · s + res
    expect(plan.groups[0]!.program.text.some((t) => /\* 0\.3\d* \+ r/.test(t))).toBe(true);
    // (inside a scope, so that no external-memory report is due; the scope's dispose comes after)
    kx.tidy(() => {
      const calls = addonCalls(() => void compiled(res, m, x, bias, 0.3));
      expect([...calls]).toEqual([['programRun', 1]]);
    });
    const replayed = kx.tidy(() => compiled(res, m, x, bias, 0.3).toFloat32Array());
    expect(maxElementRelError(replayed, eager)).toBeLessThanOrEqual(1e-6);
    expect(compiled.stats).toEqual({ traces: 1, replays: 2 });
    kx.dispose([res, m, x, bias, traced]);
  });

  it('takes float16 and bfloat16 (widened to float32 inside, narrowed once on store)', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const rng = new Rng(2);
      const args = [uniform(rng, [33, 70], 0.5, 1, dtype), uniform(rng, [33, 70], 0, 1, dtype), uniform(rng, [33, 70], 0, 1, dtype), uniform(rng, [70], 0, 1, dtype)] as const;
      const compiled = kx.compile(e1);
      const eager = e1(...args, 0.3);
      compiled(...args, 0.3).dispose();
      expect(compiled.plan(...args, 0.3)!.groups.length).toBe(1);
      const out = compiled(...args, 0.3);
      expect(out.dtype).toBe(dtype);
      // eager rounds every intermediate to the half type; the group rounds only the result
      expect(maxRelError(out, eager)).toBeLessThanOrEqual(dtype === 'float16' ? 4 * 2 ** -10 : 4 * 2 ** -7);
      kx.dispose([...args, eager, out]);
    }
  });

  it('fuse: false replays the same ops unfused (eager bits), and equals fuse: true within rounding', () => {
    const rng = new Rng(3);
    const args = [uniform(rng, [17, 40]), uniform(rng, [17, 40]), uniform(rng, [17, 40]), uniform(rng, [40])] as const;
    const plain = kx.compile(e1, { fuse: false });
    const fused = kx.compile(e1);
    const eager = e1(...args, 0.7);
    for (let i = 0; i < 2; i++) {
      plain(...args, 0.7).dispose();
      fused(...args, 0.7).dispose();
    }
    expect(plain.plan(...args, 0.7)!.groups).toEqual([]);
    expect(plain.plan(...args, 0.7)!.steps).toBe(4);
    const a = plain(...args, 0.7);
    const b = fused(...args, 0.7);
    expect(a.toFloat32Array()).toEqual(eager.toFloat32Array());
    expect(maxRelError(b, a)).toBeLessThanOrEqual(1e-6);
    kx.dispose([...args, eager, a, b]);
  });
});

// ---- fuzz: random elementwise/broadcast graphs ---------------------------------------------------

function fuzz(dtype: kx.DType, graphs: number, tol: number, ops: 'all' | 'arithmetic' = 'all'): void {
  let groups = 0;
  for (let seed = 0; seed < graphs; seed++) {
    const rng = new Rng(1000 + seed);
    const rank = rng.int(1, 4);
    const shape = Array.from({ length: rank }, () => rng.int(1, rank === 1 ? 3000 : 40));
    const floats = rng.int(1, 5);
    const masks = rng.int(0, 3);
    const xs = [
      ...Array.from({ length: floats }, () => uniform(rng, broadcastShape(rng, shape), -1.5, 1.5, dtype)),
      ...Array.from({ length: masks }, () => mask(rng, broadcastShape(rng, shape))),
    ];
    // the graph's first value must have the full shape, so that the outputs do
    xs[0] = kx.tidy(() => kx.broadcastTo(kx.add(xs[0]!, uniform(rng, shape, -1, 1, dtype)), shape));
    const graph = randomGraph(seed, shape, floats, masks, ops);
    kx.tidy(() => {
      const eager = graph(...xs);
      const compiled = kx.compile(graph);
      const plain = kx.compile(graph, { fuse: false });
      compiled(...xs);
      plain(...xs);
      const replayed = compiled(...xs);
      const unfused = plain(...xs);
      groups += compiled.plan(...xs)!.groups.length;
      expect(replayed.length).toBe(eager.length);
      eager.forEach((e, i) => {
        expect(replayed[i]!.shape, `graph ${seed} output ${i} shape`).toEqual(e.shape);
        expect(replayed[i]!.dtype).toBe(e.dtype);
        const err = maxRelError(replayed[i]!, e);
        expect(err, `graph ${seed} (${dtype}) output ${i}: ${err}`).toBeLessThanOrEqual(tol);
        expect(unfused[i]!.toFloat32Array(), `graph ${seed} unfused output ${i}`).toEqual(e.toFloat32Array());
      });
    });
    kx.dispose(xs);
  }
  expect(groups, 'the graphs formed fused groups').toBeGreaterThan(graphs / 3);
}

describe('kx.compile: fuzz of random elementwise/broadcast graphs (fixed seeds)', () => {
  it('float32: 300 graphs, compiled = eager within 1e-5 (normalised), unfused = eager bit for bit', () => fuzz('float32', 300, 1e-5));
  it('float16 and bfloat16: 40 graphs each, within a few half ulps', () => {
    fuzz('float16', 40, 2e-2);
    fuzz('bfloat16', 40, 8e-2);
  });
  it('float32 graphs the emitter writes (no transcendental): 200, and most groups ran as machine code', () => {
    const before = native.fusionStats();
    fuzz('float32', 200, 1e-5, 'arithmetic');
    const after = native.fusionStats();
    const [emitted, interpreted] = [after.emitted - before.emitted, after.interpreted - before.interpreted];
    // (those left to the interpreter have a stream repeating along rows shorter than 64 elements,
    // or a broadcast along other than the innermost dims)
    if (after.executor === 'interp') expect(emitted).toBe(0);
    else expect(emitted, `${emitted} groups emitted, ${interpreted} interpreted`).toBeGreaterThan(interpreted);
  });
});

// ---- a compiled training step ---------------------------------------------------------------------

interface Mlp {
  params: Record<string, kx.Tensor>;
  momentum: Record<string, kx.Tensor>;
}

function mlp(seed: number): Mlp {
  const rng = new Rng(seed);
  const params = { w1: uniform(rng, [12, 24], -0.4, 0.4), b1: uniform(rng, [24], -0.1, 0.1), w2: uniform(rng, [24, 3], -0.4, 0.4), b2: uniform(rng, [3], -0.1, 0.1) };
  const momentum = Object.fromEntries(Object.entries(params).map(([k, p]) => [k, kx.zeros(p.shape)]));
  return { params, momentum };
}

/** Mean squared error of a two-layer GELU MLP with a tanh head, then SGD with momentum on every parameter. */
function trainStep(model: Mlp) {
  return (x: kx.Tensor, y: kx.Tensor, first: boolean): kx.Tensor => {
    const { value, grads } = kx.valueAndGrad((p: Record<string, kx.Tensor>) => {
      const h = kx.gelu(kx.add(kx.matmul(x, p.w1!), p.b1!));
      const out = kx.add(kx.matmul(h, p.w2!), p.b2!);
      return kx.mean(kx.pow(kx.sub(kx.mul(kx.tanh(out), 2), y), 2));
    }, model.params);
    for (const k of Object.keys(model.params)) {
      kx.sgdUpdate(model.params[k]!, grads[k]!, model.momentum[k]!, { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, first });
    }
    kx.dispose(Object.values(grads));
    return value;
  };
}

describe('kx.compile: a training step (matmul + bias + GELU + loss, valueAndGrad, SGD in place)', () => {
  it('equals the eager step over several steps, the parameters updated in place at each replay', () => {
    const eagerModel = mlp(7);
    const compiledModel = mlp(7);
    const eagerStep = trainStep(eagerModel);
    const step = kx.compile(trainStep(compiledModel));
    const rng = new Rng(8);
    const batches = Array.from({ length: 6 }, () => [uniform(rng, [16, 12]), uniform(rng, [16, 3])] as const);
    for (const [i, [x, y]] of batches.entries()) {
      const before = compiledModel.params.w1!.version;
      const e = kx.tidy(() => eagerStep(x, y, i === 0).item());
      const c = kx.tidy(() => step(x, y, i === 0).toFloat32Array()[0]!);
      expect(Math.abs(c - e)).toBeLessThanOrEqual(1e-5 * Math.abs(e));
      expect(compiledModel.params.w1!.version).toBe(before + 1); // replays count their in-place updates
    }
    // step 0 (first: true) and step 1 traced; steps 2..5 replayed
    expect(step.stats).toEqual({ traces: 2, replays: 4 });
    const plan = step.plan(batches[2]![0], batches[2]![1], false)!;
    expect(plan.groups.length).toBeGreaterThan(0);
    expect(plan.nodes.filter((n) => n.inPlace).length).toBe(4);
    expect(plan.steps).toBeLessThan(plan.nodes.length);
    for (const k of Object.keys(eagerModel.params)) {
      const err = maxRelError(compiledModel.params[k]!, eagerModel.params[k]!);
      expect(err, `${k}: ${err}`).toBeLessThanOrEqual(1e-5);
    }
    kx.dispose([batches, eagerModel.params, eagerModel.momentum, compiledModel.params, compiledModel.momentum] as kx.TensorContainer);
  });
});

// ---- semantics and errors -------------------------------------------------------------------------

describe('kx.compile: signatures, captures, constants and errors', () => {
  it('retraces for new shapes, dtypes, argument counts and static values; never errors on them', () => {
    const f = kx.compile((...xs: (kx.Tensor | number)[]) => {
      const ts = xs.filter((x): x is kx.Tensor => x instanceof kx.Tensor);
      const s = xs.find((x): x is number => typeof x === 'number') ?? 1;
      return ts.slice(1).reduce((a, b) => kx.add(a, b), kx.mul(ts[0]!, s));
    });
    const a = kx.ones([2, 3]);
    const b = kx.ones([3]);
    const c = kx.ones([4]);
    kx.tidy(() => {
      expect(f(a, b).toFloat32Array()).toEqual(new Float32Array(6).fill(2));
      expect(f(a, b).toFloat32Array()).toEqual(new Float32Array(6).fill(2));
      expect(f(a, b, 2).toFloat32Array()).toEqual(new Float32Array(6).fill(3));
      expect(f(a, b, a).toFloat32Array()).toEqual(new Float32Array(6).fill(3));
      expect(f(c).toFloat32Array()).toEqual(new Float32Array(4).fill(1));
      expect(f(a.cast('bfloat16')).dtype).toBe('bfloat16');
      // the same tensor twice is a signature of its own: a replay with two tensors must not read one
      expect(f(c, c).toFloat32Array()).toEqual(new Float32Array(4).fill(2));
      expect(f(c, kx.zeros([4])).toFloat32Array()).toEqual(new Float32Array(4).fill(1));
    });
    expect(f.stats.traces).toBe(7);
    expect(f.stats.replays).toBe(1);
    kx.dispose([a, b, c]);
  });

  it('reads captured tensors as they are at each replay; constants are fixed at the trace', () => {
    const w = kx.tensor([1, 2, 3], [3]);
    let scale = 2;
    const f = kx.compile((x: kx.Tensor) => kx.add(kx.mul(x, w), kx.scalar(scale)));
    const x = kx.ones([3]);
    kx.tidy(() => {
      expect(f(x).toFloat32Array()).toEqual(Float32Array.from([3, 4, 5]));
      kx.sgdUpdate(w, kx.ones([3]), null, { lr: 1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, first: true });
      scale = 100; // not seen: the scalar was made at the trace
      expect(f(x).toFloat32Array()).toEqual(Float32Array.from([2, 3, 4]));
    });
    expect(f.stats).toEqual({ traces: 1, replays: 1 });
    // a disposed capture: the signature is traced again against the function's current tensors
    let v = kx.ones([3]);
    const g = kx.compile((t: kx.Tensor) => kx.add(t, v));
    kx.tidy(() => {
      expect(g(x).toFloat32Array()).toEqual(new Float32Array(3).fill(2));
      v.dispose();
      v = kx.full([3], 5);
      expect(g(x).toFloat32Array()).toEqual(new Float32Array(3).fill(6));
    });
    expect(g.stats).toEqual({ traces: 2, replays: 0 });
    kx.dispose([w, v, x]);
  });

  it('returns arrays and records, arguments and constants among them, as the function did', () => {
    const f = kx.compile((x: kx.Tensor, y: kx.Tensor) => {
      const s = kx.add(x, y);
      return { sum: s, both: [s, kx.mul(s, x)], x, zero: kx.zeros([2]), none: null };
    });
    const x = kx.tensor([1, 2], [2]);
    const y = kx.tensor([3, 4], [2]);
    kx.tidy(() => {
      f(x, y);
      const r = f(x, y);
      expect(r.sum.toFloat32Array()).toEqual(Float32Array.from([4, 6]));
      expect(r.both[0]).toBe(r.sum);
      expect(r.both[1]!.toFloat32Array()).toEqual(Float32Array.from([4, 12]));
      expect(r.x).toBe(x);
      expect(r.zero.toFloat32Array()).toEqual(new Float32Array(2));
      expect(r.none).toBeNull();
    });
    expect(f.stats.replays).toBe(1);
    kx.dispose([x, y]);
  });

  it('reading a value on the host while tracing is E_ARG, advising a static argument', () => {
    const x = kx.ones([2]);
    for (const read of [(t: kx.Tensor) => t.dataSync(), (t: kx.Tensor) => t.toFloat32Array(), (t: kx.Tensor) => kx.sum(t).item(), (t: kx.Tensor) => t.to('cpu')]) {
      const f = kx.compile((t: kx.Tensor) => {
        const y = kx.add(t, 1);
        read(y);
        return y;
      });
      const err = expectCode(() => f(x), 'E_ARG');
      expect(err).toBeInstanceOf(kx.ArgumentError);
      expect(err.message).toMatch(/while kx\.compile traces.*static argument.*out of the compiled function/);
    }
    // nothing stays hooked: the same reads work after a failed trace
    expect(x.toFloat32Array()).toEqual(Float32Array.from([1, 1]));
    kx.dispose(x);
  });

  it('refuses compiled functions inside valueAndGrad', () => {
    const x = kx.ones([4]);
    const g = kx.compile((t: kx.Tensor) => kx.mul(t, t));
    expectCode(() => kx.valueAndGrad(([t]) => kx.sum(g(t!)), [x]), 'E_ARG');
    expectCode(() => kx.compile((t: kx.Tensor) => t)(new Map() as unknown as kx.Tensor), 'E_ARG');
    kx.dispose(x);
  });

  it('a compiled function called while another traces runs inline, traced as part of the outer one', () => {
    const inner = kx.compile((t: kx.Tensor) => kx.tanh(kx.mul(t, 2)));
    const outer = kx.compile((t: kx.Tensor) => kx.add(inner(t), kx.sigmoid(t)));
    const x = kx.tensor([0.1, -0.3, 0.8], [3]);
    kx.tidy(() => {
      const expected = kx.add(kx.tanh(kx.mul(x, 2)), kx.sigmoid(x)).toFloat32Array();
      outer(x);
      expect(maxElementRelError(outer(x).toFloat32Array(), expected)).toBeLessThanOrEqual(1e-6);
    });
    expect(inner.stats).toEqual({ traces: 0, replays: 0 });
    expect(outer.plan(x)!.groups.length).toBe(1);
    kx.dispose(x);
  });

  it('untraced work is a constant of the program, and a failed guard traces the signature again', () => {
    const x = kx.tensor([1, 2, 3], [3]);
    const w = kx.tensor([0.5, -1, 2], [3]);
    // a derived tensor cached outside the function, made once and refreshed when w changes
    let derived: { t: kx.Tensor; version: number } | null = null;
    const f = kx.compile((t: kx.Tensor) => {
      if (derived?.version !== w.version) {
        derived?.t.dispose();
        derived = { t: kx.keep(kx.untraced(() => kx.exp(w))), version: w.version };
      }
      const d = derived;
      kx.guardTrace(() => d.version === w.version);
      return kx.mul(t, d.t);
    });
    const expected = (scale: number) => [1, 2, 3].map((v, i) => v * Math.exp([0.5, -1, 2][i]! * scale));
    kx.tidy(() => {
      expect(maxElementRelError(f(x).toFloat32Array(), Float32Array.from(expected(1)))).toBeLessThanOrEqual(1e-6);
    });
    expect(f.plan(x)!.nodes.map((n) => n.op)).toEqual(['mul']);
    kx.tidy(() => {
      expect(maxElementRelError(f(x).toFloat32Array(), Float32Array.from(expected(1)))).toBeLessThanOrEqual(1e-6);
    });
    expect(f.stats).toEqual({ traces: 1, replays: 1 });
    // w ← 2w in place: the guard fails, so the next call traces (and refreshes the copy)
    kx.tidy(() => kx.sgdUpdate(w, kx.mul(w, -1), null, { lr: 1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, first: true }));
    kx.tidy(() => {
      expect(maxElementRelError(f(x).toFloat32Array(), Float32Array.from(expected(2)))).toBeLessThanOrEqual(1e-6);
    });
    expect(f.stats).toEqual({ traces: 2, replays: 1 });
    expectCode(() => kx.compile(() => kx.guardTrace(1 as unknown as () => boolean))(), 'E_ARG');
    // clear() frees the program (its constant: the untraced copy's storage) and traces again
    const storages = kx.memory().storages;
    const program = f.plan(x);
    f.clear();
    expect(f.plan(x)).toBeUndefined();
    expect(program).toBeDefined();
    derived!.t.dispose();
    expect(kx.memory().storages).toBe(storages - 1);
    derived = null;
    kx.tidy(() => void f(x));
    expect(f.stats).toEqual({ traces: 3, replays: 1 });
    kx.dispose([x, w, derived!.t]);
  });

  it('a disposed program refuses to run', () => {
    const x = kx.tensor([1, 2], [2]);
    const program = native.programCreate({ inputs: 1, constants: [], steps: [], outputs: [0] });
    const run = () => {
      try {
        return native.programRun(program, [x.handle]);
      } catch (err) {
        throw fromNativeError(err);
      }
    };
    for (const out of run()) native.dispose(out.handle);
    native.programDispose(program);
    expectCode(run, 'E_ARG');
    x.dispose();
  });

  it('splits a chain over more than 16 tensors into groups of at most 16 inputs', () => {
    const rng = new Rng(5);
    const xs = Array.from({ length: 24 }, () => uniform(rng, [5, 7]));
    const f = kx.compile((...ts: kx.Tensor[]) => ts.reduce((a, b) => kx.add(kx.mul(a, 0.5), b)));
    const expected = kx.tidy(() => xs.reduce((a, b) => kx.add(kx.mul(a, 0.5), b)).toFloat32Array());
    kx.tidy(() => {
      f(...xs);
      expect(maxRelError(f(...xs), expected)).toBeLessThanOrEqual(1e-6);
    });
    const plan = f.plan(...xs)!;
    expect(plan.groups.length).toBeGreaterThan(1);
    for (const g of plan.groups) expect(g.inputs.length).toBeLessThanOrEqual(16);
    kx.dispose(xs);
  });
});

describe('kx.compile: the interpreter on each SIMD target', () => {
  const avx2 = cpuFlags.has('avx2');
  for (const simd of ['best', 'avx2', 'scalar']) {
    it.skipIf(simd === 'avx2' && !avx2)(`KEXUE_SIMD=${simd}: every superinstruction, within rounding of eager`, () => {
      const report = caseReport<{ target: string; groups: number; code: string[]; error: number }>('compile_simd_case.ts', { KEXUE_SIMD: simd });
      if (simd === 'avx2') expect(report.target).toBe('AVX2');
      expect(report.groups).toBe(1);
      const code = report.code.join('\n');
      for (const form of [/\* r\d+ \+ r/, /\* 0\.75 - r/, /= r\d+ - r\d+ \* r/, /\? r\d+ : r/, /tanh/, /\* gelu'\(/]) expect(code).toMatch(form);
      expect(report.error).toBeLessThanOrEqual(1e-6);
    });
  }
});
