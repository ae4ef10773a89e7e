/**
 * Single fused groups run outside their compiled function (shared by compile_group_reference.test.ts
 * and compile_fusion.cuda.test.ts): a planned group as the addon takes it, random inputs of its
 * input values' shapes and dtypes, a one-step program that runs it on the executors of its inputs'
 * device, the serial reference of the CUDA interpreter kernel's element code
 * (native.fusionInterpretReference), the graphs whose plans supply the groups (random elementwise
 * graphs, with a reduction, and gradients of the unary functions, whose groups hold UnaryGrad), and
 * the comparison.
 */
import { expect } from 'vitest';

import * as kx from '../src/index.js';
import { native, type NativeGroupSpec } from '../src/native.js';
import { Tensor } from '../src/tensor.js';

import { broadcastShape, mask, randomGraph, uniform, type Graph } from './compile_helpers.js';
import { Rng } from './parity_cases.js';

/** A planned group as programCreate and the reference take it. */
export function groupSpec(g: kx.PlannedGroup): NativeGroupSpec {
  const reduce = g.reduce ? { reduce: { op: g.reduce.op, rows: g.reduce.rows, shape: [...g.reduce.shape] } } : {};
  return { code: g.program.code, inputs: g.inputs.length, outputs: g.program.outputs, shape: [...g.shape], dtype: g.dtype, ...reduce };
}

/** Random tensors for a group's inputs on `device`: floats in [-1.5, 1.5) of their dtype, uint8 masks of 0 and 1. */
export function groupInputs(plan: kx.CompiledPlan, g: kx.PlannedGroup, rng: Rng, device = 'cpu'): kx.Tensor[] {
  return g.inputs.map((id) => {
    const v = plan.values[id]!;
    const host = v.dtype === 'uint8' ? mask(rng, [...v.shape]) : uniform(rng, [...v.shape], -1.5, 1.5, v.dtype);
    if (device === 'cpu') return host;
    const moved = host.to(device);
    host.dispose();
    return moved;
  });
}

/** Runs group g alone on its inputs (a program of one step, on the executors of their device). */
export function runGroup(g: kx.PlannedGroup, inputs: readonly kx.Tensor[]): kx.Tensor[] {
  const n = inputs.length;
  const k = g.outputs.length;
  const ids = (count: number, from: number) => Array.from({ length: count }, (_, i) => from + i);
  const program = native.programCreate({ inputs: n, constants: [], steps: [{ group: groupSpec(g), inputs: ids(n, 0), outputs: k }], outputs: ids(k, n) });
  try {
    return native.programRun(program, inputs.map((t) => t.handle)).map((raw) => new Tensor(raw));
  } finally {
    native.programDispose(program);
  }
}

/** The CUDA interpreter kernel's element code run serially on CPU inputs: each output as float32. */
export function referenceGroup(g: kx.PlannedGroup, inputs: readonly kx.Tensor[]): Float32Array[] {
  return native.fusionInterpretReference(groupSpec(g), inputs.map((t) => t.handle));
}

/** A case whose plan supplies groups: a graph and its arguments. */
export interface GroupCase {
  graph: Graph;
  args: kx.Tensor[];
}

/**
 * Random graph `seed` (compile_helpers' randomGraph) over 1 to 3 dims in `dtype`; with `reduce`, its
 * first value broadcast to the full shape and reduced by sum, mean or max over every axis or the
 * last (kept as a size-1 axis or not), then up to two epilogue ops.
 */
export function randomCase(seed: number, dtype: kx.DType, reduce: boolean): GroupCase {
  const rng = new Rng(9000 + seed);
  const rank = rng.int(1, 4);
  const shape = Array.from({ length: rank }, () => rng.int(1, rank === 1 ? 3000 : 40));
  const floats = rng.int(1, 5);
  const masks = rng.int(0, 3);
  const args = [
    ...Array.from({ length: floats }, () => uniform(rng, broadcastShape(rng, shape), -1.5, 1.5, dtype)),
    ...Array.from({ length: masks }, () => mask(rng, broadcastShape(rng, shape))),
  ];
  const body = randomGraph(seed, shape, floats, masks);
  if (!reduce) return { graph: body, args };
  const op = (['sum', 'mean', 'max'] as const)[rng.int(0, 3)]!;
  const axes = rng.uniform() < 0.5 ? undefined : -1;
  const keepDims = rng.uniform() < 0.5;
  const epilogue = Array.from({ length: rng.int(0, 3) }, () => rng.int(0, 3));
  const graph = (...xs: kx.Tensor[]): kx.Tensor[] => {
    const values = body(...xs);
    let y = kx[op](kx.broadcastTo(values[0]!, shape), axes, keepDims);
    for (const e of epilogue) y = e === 0 ? kx.mul(y, 0.75) : e === 1 ? kx.add(y, 0.5) : kx.tanh(y);
    return [y, ...values.slice(1)];
  };
  return { graph, args };
}

/** The unary functions whose derivatives the gradient cases take (pow with exponent 3). */
const UNARY: ((t: kx.Tensor) => kx.Tensor)[] = [
  kx.exp, kx.tanh, kx.sigmoid, kx.relu, kx.silu, (t) => kx.gelu(t), (t) => kx.gelu(t, { approximate: 'tanh' }),
  (t) => kx.pow(t, 3), (t) => kx.sqrt(kx.add(kx.mul(t, t), 1)), (t) => kx.log(kx.add(kx.sigmoid(t), 0.5)),
  (t) => kx.rsqrt(kx.add(kx.mul(t, t), 0.5)), kx.neg,
];

/** The gradient of Σ f(x·w) for unary case k (its backward's unary_backward ops become UnaryGrad). */
export function gradCase(k: number, dtype: kx.DType): GroupCase {
  const rng = new Rng(300 + k);
  const f = UNARY[k % UNARY.length]!;
  const graph = (x: kx.Tensor, w: kx.Tensor): kx.Tensor[] => kx.grad(([a]) => kx.sum(f(kx.mul(a!, w))), [x]);
  return { graph: graph as Graph, args: [uniform(rng, [17, 33], -1.5, 1.5, dtype), uniform(rng, [33], 0.5, 1.5, dtype)] };
}

export const GRAD_CASES = UNARY.length;

/** The plan of a case compiled (traced once, on its arguments' device). */
export function planOf(c: GroupCase): kx.CompiledPlan {
  const compiled = kx.compile(c.graph);
  kx.dispose(compiled(...c.args));
  return compiled.plan(...c.args)!;
}

/**
 * Expects `actual` to match `expected`: NaN where it is NaN, infinities equal, finite values within
 * tol·top, top the largest finite |expected|, or tol·max(top, 1) for `reduced` outputs (a reduction's
 * rounding scales with its terms, O(1) in these cases, not with a result that cancels).
 */
export function expectClose(actual: Float32Array, expected: Float32Array, tol: number, what: string, reduced = false): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let top = 0;
  for (const v of expected) if (Number.isFinite(v)) top = Math.max(top, Math.abs(v));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (!Object.is(Number.isNaN(e), Number.isNaN(a)) || (!Number.isNaN(e) && a !== e)) {
        expect.fail(`${what}: element ${i} is ${a}, expected ${e}`);
      }
      continue;
    }
    const err = Math.abs(a - e);
    if (err > worst) [worst, at] = [err, i];
  }
  expect(worst, `${what}: worst error at element ${at} (${actual[at]} against ${expected[at]}; top ${top})`).toBeLessThanOrEqual(tol * (reduced ? Math.max(top, 1) : top));
}
