/**
 * The CPU's fused-group executors (native/ops/fused_group/executor.h): the x86-64 emitter writes
 * AVX-512 or AVX2 code, KEXUE_FUSION=interp forces the block interpreter. Each configuration runs
 * compile_emitter_case.ts in a child process (both variables are read once per process) and must
 * show which executor ran each group, so that a silent fallback to the interpreter fails here (as
 * does an addon built without Xbyak, on an x86-64 CPU with AVX2).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { caseReport, cpuFlags } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const avx2 = cpuFlags.has('avx2') && cpuFlags.has('fma');
const avx512 = cpuFlags.has('avx512f') && cpuFlags.has('avx512bw');

interface CaseResult {
  groups: number;
  emitted: number;
  interpreted: number;
  error: number;
  bits: number;
}
type CaseName = 'e1' | 'e1Float16' | 'e1BFloat16' | 'adamw' | 'select' | 'wide' | 'specialsFloat16' | 'specialsBFloat16' | 'transcendental' | 'gelus' | 'gelusSpecials' | 'logarithm' | 'column' | 'column3d' | 'expFamily' | 'expSpecials' | 'geluGrads' | 'mlpStep';
interface Report {
  executor: string;
  target: string;
  // (and grad_<fn>_<dtype>: each unary derivative on special values, compile_emitter_case.ts)
  cases: Record<CaseName, CaseResult> & Record<string, CaseResult>;
}

// The unary derivatives the emitter writes, and the dtypes each is run in.
const gradFns = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'geluTanh'];
const gradDtypes = ['float32', 'float16', 'bfloat16'];

function report(env: Record<string, string>): Report {
  return caseReport<Report>('compile_emitter_case.ts', { KEXUE_FUSION: '', KEXUE_SIMD: '', ...env });
}

describe.skipIf(!avx2 || process.arch !== 'x64')('kx.compile: the CPU executors of fused groups', () => {
  const runs = new Map<string, Report>();
  const configs: { name: string; env: Record<string, string>; executor: string }[] = [
    { name: 'emitter, best target', env: {}, executor: avx512 ? 'avx512' : 'avx2' },
    { name: 'emitter, AVX2 forced (KEXUE_SIMD=avx2)', env: { KEXUE_SIMD: 'avx2' }, executor: 'avx2' },
    { name: 'interpreter (KEXUE_FUSION=interp)', env: { KEXUE_FUSION: 'interp' }, executor: 'interp' },
  ];
  for (const config of configs) {
    it(`${config.name}: each group runs in the executor it should, within 1e-6 of eager`, () => {
      const r = report(config.env);
      runs.set(config.name, r);
      expect(r.executor).toBe(config.executor);
      const emits = config.executor !== 'interp';
      // (SiLU's and the GELUs' derivatives are emitted in AVX2 code only: emitter.cpp's emitted_instr)
      const emitsGrad = (fn: string) => emits && !(config.executor === 'avx512' && ['silu', 'gelu', 'geluTanh'].includes(fn));
      // (halves: eager rounds after each op, a group once at the end)
      const tolerance = { e1: 1e-6, e1Float16: 2e-3, e1BFloat16: 2e-2, adamw: 1e-6, select: 1e-6, wide: 1e-6, column: 1e-6, column3d: 1e-6, expFamily: 1e-6, transcendental: 1e-6, gelus: 1e-6, geluGrads: 1e-6 };
      for (const [name, tol] of Object.entries(tolerance) as [CaseName, number][]) {
        const c = r.cases[name];
        expect(c.groups, name).toBe(1);
        // two replays of one group each
        expect([c.emitted, c.interpreted], name).toEqual((name === 'geluGrads' ? emitsGrad('gelu') : emits) ? [2, 0] : [0, 2]);
        expect(c.error, name).toBeLessThanOrEqual(tol);
      }
      // (NaN and infinity: compared by their bits below)
      for (const name of ['specialsFloat16', 'specialsBFloat16', 'expSpecials', 'gelusSpecials'] as const) expect([r.cases[name].emitted, r.cases[name].interpreted], name).toEqual(emits ? [2, 0] : [0, 2]);
      for (const fn of gradFns) {
        for (const dtype of gradDtypes) {
          const c = r.cases[`grad_${fn}_${dtype}`]!;
          expect([c.groups, c.emitted, c.interpreted], `${fn}' in ${dtype}`).toEqual(emitsGrad(fn) ? [1, 2, 0] : [1, 0, 2]);
        }
      }
      // a compiled training step: forward, backward (the unary derivatives) and update groups, all
      // emitted in AVX2 code (with AVX-512, those holding a GELU's derivative interpreted)
      const step = r.cases.mlpStep;
      expect(step.groups).toBeGreaterThanOrEqual(6);
      expect(step.emitted + step.interpreted).toBe(2 * step.groups);
      if (config.executor === 'avx512') expect(step.interpreted).toBeGreaterThan(0);
      else expect([step.emitted, step.interpreted]).toEqual(emits ? [2 * step.groups, 0] : [0, 2 * step.groups]);
      expect(step.error).toBeLessThanOrEqual(1e-6);
      // log is not emitted: its group falls back to the interpreter
      expect([r.cases.logarithm.emitted, r.cases.logarithm.interpreted]).toEqual([0, 2]);
      expect(r.cases.logarithm.error).toBeLessThanOrEqual(1e-6);
    });
  }

  it('the emitted kernels give the interpreter bits (the same IEEE operations and FMAs)', () => {
    const [first, ...rest] = configs.map((c) => runs.get(c.name) ?? report(c.env));
    for (const r of rest) for (const name of Object.keys(first!.cases)) expect(r.cases[name]!.bits, name).toBe(first!.cases[name]!.bits);
  });

  it('KEXUE_FUSION with an unknown value is E_ARG at the first group run', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', path.join(here, 'compile_emitter_case.ts')], {
      cwd: path.join(here, '..'),
      env: { ...process.env, KEXUE_FUSION: 'jit' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/KEXUE_FUSION=jit/);
  });
});
