/**
 * kx.compile's fused groups on CUDA (native/ops/fused_group/fused_group.cu): compiled against eager
 * on the device for E1 (a row-broadcast bias and a mask: PTX), AdamW in plain ops (three outputs,
 * 0-d scalars read as rows of period 1: PTX), a reduction group and halves (the interpreter kernel),
 * and random graphs; each group of the random graphs also alone against the CPU reference of the
 * interpreter's element code (group_eval.h). native.fusionStats().cuda must show groups run from PTX
 * and by the interpreter, and no PTX load failure (its reason would be in lastFailure). Skipped
 * without a GPU: until a GPU session runs it, the CUDA executor is unverified.
 */

import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { native } from '../src/native.js';

import { ADAMW, adamwPlain, mask, uniform } from './compile_helpers.js';
import { expectClose, GRAD_CASES, gradCase, groupInputs, planOf, randomCase, referenceGroup, runGroup, type GroupCase } from './compile_group_harness.js';
import { caseReport } from './helpers.js';
import { Rng } from './parity_cases.js';

const gpu = kx.cuda.isAvailable();
const skipped = gpu ? '' : ` (skipped: ${kx.cuda.unavailableReason()})`;

const cudaStats = () => native.fusionStats().cuda;

/** Runs fn and returns how many groups ran from PTX and in the interpreter kernel meanwhile. */
function counted(fn: () => void): { ptx: number; interpreted: number } {
  const before = cudaStats();
  fn();
  const after = cudaStats();
  expect(after.loadFailures, `PTX load failures: ${after.lastFailure}`).toBe(before.loadFailures);
  return { ptx: after.ptx - before.ptx, interpreted: after.interpreted - before.interpreted };
}

/** Moves a case's arguments to the GPU. */
function onGpu(c: GroupCase): GroupCase {
  const args = c.args.map((t) => t.to('cuda'));
  kx.dispose(c.args);
  return { graph: c.graph, args };
}

/** Compiled (replayed) against eager on the same CUDA arguments, each output within tol of its largest value (of 1 at least when `reduced`). */
function expectCompiledMatchesEager(c: GroupCase, tol: number, what: string, reduced = false): void {
  kx.tidy(() => {
    const eager = c.graph(...c.args);
    const compiled = kx.compile(c.graph);
    compiled(...c.args);
    const outs = compiled(...c.args);
    eager.forEach((e, i) => {
      expect(outs[i]!.device, `${what} output ${i} device`).toBe(e.device);
      expectClose(outs[i]!.toFloat32Array(), e.toFloat32Array(), tol, `${what} output ${i}`, reduced);
    });
  });
}

describe.skipIf(!gpu)(`kx.compile on CUDA: fused groups${skipped}`, () => {
  it('E1 = res + mask·(x + bias)·s runs from PTX and matches eager', () => {
    const rng = new Rng(11);
    const e1 = (res: kx.Tensor, m: kx.Tensor, x: kx.Tensor, bias: kx.Tensor) => [kx.add(res, kx.mul(kx.mul(m, kx.add(x, bias)), 0.5))];
    const coin = mask(rng, [64, 1000]);
    const c = onGpu({ graph: e1, args: [uniform(rng, [64, 1000]), coin.cast('float32'), uniform(rng, [64, 1000]), uniform(rng, [1000])] });
    coin.dispose();
    expect(planOf(c).groups.length).toBe(1);
    const n = counted(() => expectCompiledMatchesEager(c, 1e-6, 'E1'));
    expect(n.ptx).toBeGreaterThan(0);
    kx.dispose(c.args);
  });

  it('AdamW in plain ops: one PTX group, θ, m, v as eager', () => {
    const rng = new Rng(12);
    const shape = [300, 257];
    const args = [
      uniform(rng, shape), uniform(rng, shape, -0.1, 0.1), uniform(rng, shape, 0, 0.01), uniform(rng, shape),
      kx.tensor([1e-3], []), kx.tensor([1 - ADAMW.beta1], []), kx.tensor([1 - ADAMW.beta2], []),
    ];
    const c = onGpu({ graph: adamwPlain, args });
    expect(planOf(c).groups.length).toBe(1);
    const n = counted(() => expectCompiledMatchesEager(c, 1e-6, 'AdamW'));
    expect(n.ptx).toBeGreaterThan(0);
    kx.dispose(c.args);
  });

  it('a reduction group and halves run in the interpreter kernel and match eager', () => {
    const rng = new Rng(13);
    const reduction = (x: kx.Tensor, w: kx.Tensor) => [kx.mul(kx.sum(kx.mul(kx.tanh(x), w), -1), 0.5), kx.max(kx.add(x, w), -1)];
    const r = onGpu({ graph: reduction, args: [uniform(rng, [128, 700]), uniform(rng, [700])] });
    const n = counted(() => expectCompiledMatchesEager(r, 1e-5, 'reduction', true));
    expect(n.interpreted).toBeGreaterThan(0);
    kx.dispose(r.args);
    for (const [dtype, tol] of [['float16', 2e-3], ['bfloat16', 1.6e-2]] as const) {
      const e1 = (res: kx.Tensor, x: kx.Tensor, bias: kx.Tensor) => [kx.add(res, kx.mul(kx.gelu(kx.add(x, bias)), 0.5))];
      const h = onGpu({ graph: e1, args: [uniform(rng, [64, 512], -1, 1, dtype), uniform(rng, [64, 512], -1, 1, dtype), uniform(rng, [512], -1, 1, dtype)] });
      const m = counted(() => expectCompiledMatchesEager(h, tol, `E1 with GELU in ${dtype}`));
      expect(m.interpreted, dtype).toBeGreaterThan(0);
      kx.dispose(h.args);
    }
  });

  it('random graphs: compiled = eager on CUDA, and each group = the CPU reference', () => {
    let ptx = 0;
    let interpreted = 0;
    const check = (make: () => GroupCase, tol: number, what: string, reduced: boolean, eagerTol = tol) => {
      // eager against compiled on the device (halves: eager rounds after every op, as compile.test.ts)
      const c = onGpu(make());
      const n = counted(() => expectCompiledMatchesEager(c, eagerTol, what, reduced));
      ptx += n.ptx;
      interpreted += n.interpreted;
      // each group alone: the CUDA executor against the reference on the same inputs
      const plan = planOf(c);
      const rng = new Rng(what.length);
      plan.groups.forEach((g, gi) => {
        const host = groupInputs(plan, g, rng);
        const device = host.map((t) => t.to('cuda'));
        const outs = runGroup(g, device);
        const expected = referenceGroup(g, host);
        outs.forEach((o, k) => expectClose(o.toFloat32Array(), expected[k]!, tol, `${what} group ${gi} output ${k} (alone)`, reduced));
        kx.dispose([...host, ...device, ...outs]);
      });
      kx.dispose(c.args);
    };
    for (let seed = 0; seed < 40; seed++) check(() => randomCase(seed, 'float32', false), 1e-5, `graph ${seed}`, false);
    for (let seed = 0; seed < 40; seed++) check(() => randomCase(seed, 'float32', true), 5e-5, `reduction ${seed}`, true);
    for (let k = 0; k < GRAD_CASES; k++) check(() => gradCase(k, 'float32'), 1e-5, `gradient ${k}`, false);
    for (let seed = 0; seed < 10; seed++) check(() => randomCase(seed, 'bfloat16', seed % 2 === 1), 1.6e-2, `bfloat16 graph ${seed}`, seed % 2 === 1, 8e-2);
    expect(ptx, 'groups run from PTX').toBeGreaterThan(0);
    expect(interpreted, 'groups run by the interpreter kernel').toBeGreaterThan(0);
  });

  it('KEXUE_FUSION=interp runs the PTX-able groups (E1, AdamW) in the interpreter kernel; unset, from PTX', () => {
    const report = (fusion: string) =>
      caseReport<{ ptx: number; interpreted: number; loadFailures: number; lastFailure: string; errors: Record<string, number> }>('compile_fusion_cuda_case.ts', { KEXUE_FUSION: fusion });
    const interp = report('interp');
    expect(interp.ptx).toBe(0);
    expect(interp.interpreted).toBeGreaterThanOrEqual(2); // a replay of each case's group (the trace runs eagerly)
    const ptx = report('');
    expect(ptx.loadFailures, ptx.lastFailure).toBe(0);
    expect(ptx.interpreted).toBe(0);
    expect(ptx.ptx).toBeGreaterThanOrEqual(2);
    for (const r of [interp, ptx]) for (const [name, err] of Object.entries(r.errors)) expect(err, name).toBeLessThanOrEqual(1e-6);
  });

  it('a group reading tensors of two devices is E_DEVICE', () => {
    const rng = new Rng(14);
    const c: GroupCase = { graph: (a, b) => [kx.add(kx.mul(kx.tanh(a!), 2), b!)], args: [uniform(rng, [8, 8]), uniform(rng, [8, 8])] };
    const plan = planOf(c);
    expect(plan.groups.length).toBe(1);
    const mixed = [c.args[0]!.to('cuda'), c.args[1]!];
    expect(() => runGroup(plan.groups[0]!, mixed)).toThrow(kx.DeviceError);
    kx.dispose([...c.args, mixed[0]!]);
  });
});
