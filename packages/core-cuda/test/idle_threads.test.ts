import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * CPU time (ms) a process uses while idle for 100 ms right after a matrix product and an attention
 * (oneDNN on the pool's threads), per round, in a fresh process (the
 * settings are read once, as the addon loads).
 */
function idleCpuAfterGemm(env: Record<string, string | undefined>): number[] {
  const script = `
    import * as kx from '@kexue/core-cuda';
    kx.setNumThreads(2);
    const a = kx.keep(kx.full([512, 512], 0.5));
    const q = kx.keep(kx.full([2, 4, 256, 64], 0.1));
    const out = [];
    for (let r = 0; r < 4; r++) {
      kx.tidy(() => kx.matmul(a, a).dataSync());
      kx.tidy(() => kx.attention(q, q, q).dataSync());
      const u0 = process.cpuUsage();
      await new Promise((res) => setTimeout(res, 100));
      const u = process.cpuUsage(u0);
      out.push((u.user + u.system) / 1000);
    }
    console.log(JSON.stringify(out));`;
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  const child = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: path.join(here, '..'),
    env: childEnv,
    encoding: 'utf8',
  });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim()) as number[];
}

describe('threads that have nothing to do', () => {
  it('sleep: the workers stop spinning right after a matrix product', () => {
    const rounds = idleCpuAfterGemm({ KEXUE_SPIN_US: undefined });
    // a spinning worker would use ~100 ms of CPU per 100 ms idle; the control below shows it does
    expect(Math.min(...rounds)).toBeLessThan(20);
  });

  // (the pool starts no worker thread on a one-core machine)
  it.skipIf(os.availableParallelism() < 2)('keep a value the user set (the control: a pool told to spin for 0.2 s)', () => {
    const rounds = idleCpuAfterGemm({ KEXUE_SPIN_US: '200000' });
    expect(Math.max(...rounds)).toBeGreaterThan(50);
  });
});
