/**
 * The CUDA interpreter kernel's element code on the CPU (native/ops/fused_group/group_eval.h, the
 * "CPU twin": the kernel and native.fusionInterpretReference run the same group_eval): the groups of
 * random graphs (elementwise, with reductions, in float32 and the halves, with uint8 masks and
 * broadcast inputs) and of the unary functions' gradients (UnaryGrad), each run alone on random
 * inputs by the CPU's executors and by the reference, must agree. What differs is where the CPU
 * contracts or vectorises: its transcendentals are the vector runs (the reference calls the scalar
 * Unary<F> of ops/elementwise/math.h), its sums are pairwise (the reference folds a row in order),
 * so the bound is relative to each output's largest value, and a half output may differ by an ulp.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';

import { expectClose, GRAD_CASES, gradCase, groupInputs, planOf, randomCase, referenceGroup, runGroup, type GroupCase } from './compile_group_harness.js';
import { Rng } from './parity_cases.js';

/** Float32 bounds: elementwise groups, and groups with a row reduction (sums in another order). */
const TOL = { float32: 2e-6, float16: 2e-3, bfloat16: 1.6e-2 } as const;
const REDUCED_TOL = { float32: 5e-5, float16: 4e-3, bfloat16: 1.6e-2 } as const;

/** Instruction kinds seen (plan.h's GroupOp numbering: unary 10, unary_grad 11, reduce 12). */
function opsOf(g: kx.PlannedGroup): Set<number> {
  const ops = new Set<number>();
  for (let i = 0; i < g.program.code.length; i += 6) ops.add(g.program.code[i]! & 0xff);
  return ops;
}

/** Checks every group of a case's plan on the CPU against the reference; returns the groups checked. */
function checkCase(c: GroupCase, dtype: keyof typeof TOL, what: string, seen: Set<string>): number {
  const plan = planOf(c);
  const rng = new Rng(what.length * 7919 + plan.groups.length);
  plan.groups.forEach((g, gi) => {
    const inputs = groupInputs(plan, g, rng);
    const outs = runGroup(g, inputs);
    const expected = referenceGroup(g, inputs);
    outs.forEach((o, k) => {
      const tol = (g.reduce ? REDUCED_TOL : TOL)[dtype];
      expectClose(o.toFloat32Array(), expected[k]!, tol, `${what} group ${gi} output ${k}`, g.reduce !== undefined);
    });
    const ops = opsOf(g);
    if (ops.has(10)) seen.add('unary');
    if (ops.has(11)) seen.add('unary_grad');
    if (g.reduce) seen.add(`reduce ${g.reduce.op}`);
    if (g.inputs.some((id) => plan.values[id]!.dtype === 'uint8')) seen.add('mask');
    if (g.inputs.some((id) => plan.values[id]!.shape.reduce((a, b) => a * b, 1) !== g.shape.reduce((a, b) => a * b, 1))) seen.add('broadcast');
    kx.dispose([...inputs, ...outs]);
  });
  kx.dispose(c.args);
  return plan.groups.length;
}

describe('fused groups: the CUDA interpreter element code (CPU twin) = the CPU executors', () => {
  it('float32: random elementwise graphs, reductions and unary gradients', () => {
    const seen = new Set<string>();
    let groups = 0;
    for (let seed = 0; seed < 60; seed++) groups += checkCase(randomCase(seed, 'float32', false), 'float32', `graph ${seed}`, seen);
    for (let seed = 0; seed < 60; seed++) groups += checkCase(randomCase(seed, 'float32', true), 'float32', `reduction ${seed}`, seen);
    for (let k = 0; k < GRAD_CASES; k++) groups += checkCase(gradCase(k, 'float32'), 'float32', `gradient ${k}`, seen);
    expect(groups).toBeGreaterThan(100);
    expect([...seen].sort()).toEqual(['broadcast', 'mask', 'reduce max', 'reduce mean', 'reduce sum', 'unary', 'unary_grad']);
  });

  it('float16 and bfloat16: inputs widened, outputs rounded once', () => {
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const seen = new Set<string>();
      let groups = 0;
      for (let seed = 0; seed < 25; seed++) groups += checkCase(randomCase(seed, dtype, seed % 2 === 1), dtype, `${dtype} graph ${seed}`, seen);
      for (let k = 0; k < GRAD_CASES; k += 3) groups += checkCase(gradCase(k, dtype), dtype, `${dtype} gradient ${k}`, seen);
      expect(groups, dtype).toBeGreaterThan(15);
      expect(seen.has('unary'), `${dtype}: unary functions`).toBe(true);
      expect([...seen].some((s) => s.startsWith('reduce')), `${dtype}: reductions`).toBe(true);
    }
  });

  it('rejects a wrong input count with E_ARG', () => {
    const c = gradCase(1, 'float32');
    const plan = planOf(c);
    expect(plan.groups.length).toBeGreaterThan(0);
    expect(() => referenceGroup(plan.groups[0]!, [])).toThrow(/expected \d+ inputs, got 0/);
    kx.dispose(c.args);
  });
});
