// The CPU's vector runs (kx/simd.h) on every target this machine has, each in its own child process
// (KEXUE_SIMD is read once, when the addon loads): the best target, AVX2 and scalar (Highway's
// SCALAR) must each stay within simd_cases.ts's bounds of a float64 reference on edge values
// (+-inf, NaN, signed zeros, the ends of exp's range, subnormal results) and on lengths that are
// not a multiple of any vector width or reduction block: the transcendentals, softmax rows,
// cross-entropy and attention, binary arithmetic, row and column sums and maxima, the norms forward
// and backward, the optimizer updates and the 16-bit float conversions (bfloat16 exactly; float16
// with the same bits on every target). An unknown KEXUE_SIMD fails the load with E_ARG.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { caseReport, cpuFlags } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

interface CaseReport {
  target: string;
  f16c: boolean;
  errors: Record<string, number>;
  widenedBits: number;
  narrowedBits: number;
}

const runCases = (simd: string | undefined) => caseReport<CaseReport>('simd_cases.ts', { KEXUE_SIMD: simd });

describe('SIMD dispatch (KEXUE_SIMD)', () => {
  const reports = new Map<string, CaseReport>();
  const caps: Array<[string | undefined, string | null]> = [
    [undefined, null],
    ['avx2', 'AVX2'],
    ['scalar', 'SCALAR'],
  ];

  for (const [cap, target] of caps) {
    const label = cap ?? 'best';
    // (on a CPU without AVX2 the cap would run a lower target)
    it.skipIf(cap === 'avx2' && !cpuFlags.has('avx2'))(`${label}: every run within its bounds of float64`, { timeout: 180_000 }, () => {
      const report = runCases(cap);
      reports.set(label, report);
      if (target) expect(report.target).toBe(target);
      else expect(report.target).toBe(kx.buildInfo().simd);
      expect(report.f16c).toBe(report.target === 'AVX2' || report.target.startsWith('AVX3'));
      for (const [name, err] of Object.entries(report.errors)) expect(err, `${label}: ${name}`).toBeLessThanOrEqual(1);
      expect(Object.keys(report.errors).length).toBe(47);  // every case of simd_cases.ts reported
    });
  }

  it('every target converts float16 to the same bits', () => {
    const all = [...reports.values()];
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const r of all) {
      expect(r.widenedBits).toBe(all[0]!.widenedBits);
      expect(r.narrowedBits).toBe(all[0]!.narrowedBits);
    }
  });

  it('an unknown KEXUE_SIMD fails the load with E_ARG, naming the choices', () => {
    const code = "import('./src/index.js').then(() => console.log('loaded'), (e) => console.log(e.code + ' ' + e.constructor.name + ': ' + e.message))";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', '--input-type=module', '--eval', code], {
      cwd: path.join(here, '..'),
      env: { ...process.env, KEXUE_SIMD: 'avx9000' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stdout).toContain('E_ARG ArgumentError: KEXUE_SIMD=avx9000: unknown SIMD target (expected best, avx512, avx2, sse4 or scalar)');
  });
});
