import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { native } from '../src/native.js';
import { profileFromEnv } from '../src/profile.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function step(w: kx.Tensor, x: kx.Tensor): void {
  kx.tidy(() => kx.valueAndGrad(({ w }) => kx.sum(kx.gelu(kx.matmul(x, w))), { w }));
}

describe('profiler', () => {
  afterEach(() => {
    kx.profiler.disable();
    kx.profiler.reset();
  });

  it('counts every op call by kind, the backward replay apart, and every addon call', () => {
    const w = kx.keep(kx.full([16, 8], 0.1));
    const x = kx.keep(kx.full([4, 16], 1));
    kx.profiler.reset();
    kx.profiler.enable();
    for (let i = 0; i < 3; i++) step(w, x);
    kx.profiler.disable();
    const rows = kx.profiler.rows();
    const op = (name: string) => rows.find((r) => r.kind === 'op' && r.name === name);
    expect(op('matmul')?.calls).toBe(3);
    expect(op('matmul (backward)')?.calls).toBe(6); // the rule makes dx and dW
    expect(op('unary')?.calls).toBe(3);
    const run = rows.find((r) => r.kind === 'call' && r.name === 'run')!;
    const opCalls = rows.filter((r) => r.kind === 'op').reduce((n, r) => n + r.calls, 0);
    expect(run.calls).toBe(opCalls);
    for (const r of rows) {
      expect(r.totalMs).toBeGreaterThan(0);
      expect(r.maxUs * r.calls).toBeGreaterThanOrEqual(r.meanUs * r.calls - 1e-9);
      expect(r.share).toBeLessThanOrEqual(1);
    }
    expect(kx.profiler.format()).toMatch(/^kexue profile: [\d.]+ ms profiled\nop +calls/);
    kx.dispose([w, x]);
  });

  it("times a compiled program's steps into the same op rows as the eager ops, backward and fused groups named", () => {
    const w = kx.keep(kx.full([16, 8], 0.1));
    const x = kx.keep(kx.full([4, 16], 1));
    const b = kx.keep(kx.full([8], 0.5));
    // gelu(x·w)·2 + b: a traced train-like step whose elementwise tail becomes a fused group
    const compiled = kx.compile((w: kx.Tensor) => {
      const { value, grads } = kx.valueAndGrad(({ w }) => kx.sum(kx.add(kx.mul(kx.gelu(kx.matmul(x, w)), 2), kx.mul(b, b))), { w });
      return [value, grads.w!];
    });
    kx.tidy(() => void compiled(w)); // the trace runs eagerly: not profiled here
    const plan = compiled.plan(w)!;
    kx.profiler.reset();
    kx.profiler.enable();
    for (let i = 0; i < 3; i++) kx.tidy(() => void compiled(w));
    kx.profiler.disable();
    const rows = kx.profiler.rows();
    const op = (name: string) => rows.find((r) => r.kind === 'op' && r.name === name);
    expect(op('matmul')?.calls).toBe(3);
    expect(op('matmul (backward)')?.calls).toBe(3); // only dW: x is not differentiated
    expect(plan.groups.length).toBeGreaterThan(0);
    const groupRows = rows.filter((r) => r.kind === 'op' && r.name.startsWith('fused group'));
    expect(groupRows.reduce((n, r) => n + r.calls, 0)).toBe(3 * plan.groups.length);
    const stepCalls = rows.filter((r) => r.kind === 'op').reduce((n, r) => n + r.calls, 0);
    expect(stepCalls).toBe(3 * plan.steps);
    const programRun = rows.find((r) => r.kind === 'call' && r.name === 'programRun')!;
    expect(programRun.calls).toBe(3);
    // the steps' times lie inside their programRun calls
    const stepMs = rows.filter((r) => r.kind === 'op').reduce((t, r) => t + r.totalMs, 0);
    expect(stepMs).toBeGreaterThan(0);
    expect(stepMs).toBeLessThanOrEqual(programRun.totalMs);
    kx.dispose([w, x, b]);
  });

  it('leaves the addon untouched when off, and counts nothing then', () => {
    const run = native.run;
    kx.profiler.enable();
    expect(native.run).not.toBe(run);
    kx.profiler.disable();
    expect(native.run).toBe(run);
    kx.profiler.reset();
    kx.tidy(() => kx.add(kx.full([2], 1), kx.full([2], 2)));
    expect(kx.profiler.rows()).toEqual([]);
  });

  it('reads KEXUE_PROFILE: 1, sync, off, and a typed error for anything else', () => {
    expect(profileFromEnv(undefined)).toBeNull();
    expect(profileFromEnv('0')).toBeNull();
    expect(profileFromEnv('1')).toEqual({});
    expect(profileFromEnv('sync')).toEqual({ sync: true });
    expect(() => profileFromEnv('yes')).toThrow(expect.objectContaining({ code: 'E_ARG' }));
  });

  it('prints the table at exit under KEXUE_PROFILE=1', () => {
    const script = "import * as kx from '@kexue/core-cuda'; kx.tidy(() => kx.matmul(kx.full([8, 8], 1), kx.full([8, 8], 1)));";
    const child = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.join(here, '..'),
      env: { ...process.env, KEXUE_PROFILE: '1' },
      encoding: 'utf8',
    });
    expect(child.status).toBe(0);
    expect(child.stdout).toBe('');
    expect(child.stderr).toMatch(/^kexue profile: [\d.]+ ms profiled\nop .*\n(.*\n)*matmul +1 /);
  });
});
