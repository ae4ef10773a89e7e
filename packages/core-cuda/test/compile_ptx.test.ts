/**
 * The PTX writer of fused groups (native/ops/fused_group/ptx_writer.h): the text written for E1
 * (res + mask·(x + bias)·s, a row-broadcast bias), for AdamW in plain ops (three outputs, 0-d
 * scalars) and for a select over a uint8 mask row must assemble with ptxas for sm_80 and sm_90
 * without spills. The CUDA executor (fused_group.cu) loads and launches such text, and
 * compile_fusion.cuda.test.ts runs it on a GPU; here only ptxas judges it. Skipped where ptxas is
 * not found.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { native } from '../src/native.js';

import { adamwPlain as adamw, mask, randomGraph, uniform } from './compile_helpers.js';
import { Rng } from './parity_cases.js';

/** ptxas on PATH, else CUDA's default install; null when neither runs. */
const ptxas = (() => {
  for (const candidate of ['ptxas', '/usr/local/cuda/bin/ptxas']) {
    if (candidate.includes('/') && !existsSync(candidate)) continue;
    if (spawnSync(candidate, ['--version'], { encoding: 'utf8' }).status === 0) return candidate;
  }
  return null;
})();

const dir = mkdtempSync(path.join(tmpdir(), 'kexue-ptx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const unassembled = ptxas ? '' : ' (skipped: no ptxas on PATH or in /usr/local/cuda/bin)';

type Read = Parameters<typeof native.fusionPtx>[1][number];

/** The plan of fn on args (a plan exists once the function has been traced). */
function planOf<A extends kx.Tensor[]>(fn: (...args: A) => kx.Tensor | kx.Tensor[], args: A): kx.CompiledPlan {
  const compiled = kx.compile(fn);
  kx.dispose(compiled(...args));
  return compiled.plan(...args)!;
}

/** The PTX of group g of a plan, each input read as its shape and dtype say (as the CPU emitter's driver classifies them). */
function groupPtx(plan: kx.CompiledPlan, g: kx.PlannedGroup = onlyGroup(plan)): string | null {
  const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  const reads = g.inputs.map((id): Read => {
    const v = plan.values[id]!;
    const byte = v.dtype === 'uint8';
    if (numel(v.shape) === 1) return 'scalar';
    if (numel(v.shape) === numel(g.shape)) return byte ? 'uint8' : 'float32';
    return byte ? 'uint8-row' : 'float32-row';
  });
  const reduce = g.reduce ? { reduce: { op: g.reduce.op, rows: g.reduce.rows, shape: [...g.reduce.shape] } } : {};
  return native.fusionPtx({ code: g.program.code, inputs: g.inputs.length, outputs: g.program.outputs, shape: [...g.shape], dtype: g.dtype, ...reduce }, reads);
}

function onlyGroup(plan: kx.CompiledPlan): kx.PlannedGroup {
  expect(plan.groups.length).toBe(1);
  return plan.groups[0]!;
}

/** ptxas -v on a PTX text for arch: its exit status and output. */
function assemble(text: string, name: string, arch: string): { status: number | null; log: string } {
  const file = path.join(dir, `${name}.ptx`);
  writeFileSync(file, text);
  const r = spawnSync(ptxas!, ['-arch', arch, '-v', '-o', path.join(dir, `${name}.${arch}.cubin`), file], { encoding: 'utf8' });
  return { status: r.status, log: r.stdout + r.stderr };
}

function e1Plan(): kx.CompiledPlan {
  const e1 = (res: kx.Tensor, m: kx.Tensor, x: kx.Tensor, bias: kx.Tensor) => kx.add(res, kx.mul(kx.mul(m, kx.add(x, bias)), 0.5));
  const rng = new Rng(7);
  const coin = mask(rng, [4, 64]);
  const args = [uniform(rng, [4, 64]), coin.cast('float32'), uniform(rng, [4, 64]), uniform(rng, [64])] as const;
  coin.dispose();
  const plan = planOf(e1, [...args]);
  kx.dispose([...args]);
  return plan;
}

/** A uint8 mask read as a row, where, and the unary ops the writer has. */
function selectPlan(): kx.CompiledPlan {
  const select = (m: kx.Tensor, x: kx.Tensor, y: kx.Tensor) => kx.where(m, kx.rsqrt(kx.add(kx.mul(x, x), 1)), kx.neg(kx.relu(kx.sub(kx.sqrt(kx.mul(y, y)), 0.5))));
  const rng = new Rng(10);
  const args = [mask(rng, [64]), uniform(rng, [4, 64]), uniform(rng, [4, 64])] as const;
  const plan = planOf(select, [...args]);
  kx.dispose([...args]);
  return plan;
}

function adamwPlan(): kx.CompiledPlan {
  const rng = new Rng(8);
  const n = 256;
  const args = [uniform(rng, [n]), kx.zeros([n]), kx.zeros([n]), uniform(rng, [n]), kx.tensor([1e-3], []), kx.tensor([0.1], []), kx.tensor([0.001], [])] as const;
  const plan = planOf(adamw, [...args]);
  kx.dispose([...args]);
  return plan;
}

describe('kx.compile: the PTX writer of fused groups', () => {
  const cases = [
    { name: 'E1', plan: e1Plan, params: 7, stores: 1 }, // n, res, mask, x, bias and its period; 1 output
    { name: 'AdamW', plan: adamwPlan, params: 11, stores: 3 }, // n, 7 inputs, 3 outputs
    { name: 'select', plan: selectPlan, params: 6, stores: 1 }, // n, the mask and its period, x, y, 1 output
  ];

  for (const c of cases) {
    it(`${c.name}: one shape-generic sm_80 entry with a grid-stride loop`, () => {
      const text = groupPtx(c.plan());
      expect(text).not.toBeNull();
      expect(text).toMatch(/^\.version 8\.0$/m);
      expect(text).toMatch(/^\.target sm_80$/m);
      expect(text).toMatch(/^\.address_size 64$/m);
      expect(text!.match(/\.visible \.entry kx_fused_group\(/g)?.length).toBe(1);
      expect(text!.match(/\.param \./g)?.length).toBe(c.params);
      expect(text!.match(/st\.global\.f32/g)?.length).toBe(c.stores);
      expect(text).toContain('%nctaid.x');
    });

    it.skipIf(!ptxas)(`${c.name}: ptxas assembles it for sm_80 and sm_90 without spills${unassembled}`, () => {
      const text = groupPtx(c.plan())!;
      for (const arch of ['sm_80', 'sm_90']) {
        const { status, log } = assemble(text, c.name, arch);
        expect(status, log).toBe(0);
        expect(log, log).toMatch(/0 bytes spill stores, 0 bytes spill loads/);
        expect(log, log).toMatch(/Used \d+ registers/);
      }
    });
  }

  it.skipIf(!ptxas)(`random graphs of the arithmetic ops (immediates, masks, rows, several outputs): every group assembles${unassembled}`, () => {
    let groups = 0;
    for (let seed = 1; seed <= 16; seed++) {
      const rng = new Rng(100 + seed);
      const args = [uniform(rng, [4, 64]), uniform(rng, [64]), kx.tensor([0.75], []), uniform(rng, [4, 64]), mask(rng, [4, 64])];
      const plan = planOf(randomGraph(seed, [4, 64], 4, 1, 'arithmetic'), args);
      for (const g of plan.groups) {
        const text = groupPtx(plan, g);
        expect(text, `seed ${seed}`).not.toBeNull();
        const { status, log } = assemble(text!, `random${seed}_${groups++}`, 'sm_80');
        expect(status, `seed ${seed}: ${log}`).toBe(0);
      }
      kx.dispose(args);
    }
    expect(groups).toBeGreaterThanOrEqual(12); // (15: a graph may have no chain to fuse)
  });

  it('returns null where the writer has no instruction for an op (tanh), and for a reduction', () => {
    const rng = new Rng(9);
    const x = uniform(rng, [4, 64]);
    for (const fn of [(t: kx.Tensor) => kx.mul(kx.tanh(kx.add(t, 1)), 2), (t: kx.Tensor) => kx.sum(kx.mul(kx.add(t, 1), t), -1)])
      expect(groupPtx(planOf(fn, [x]))).toBeNull();
    x.dispose();
  });
});
